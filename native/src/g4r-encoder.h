// g4r-encoder.h - a BERT encoder graph of our own over ggml, for embedding models on the CPU.
//
// llama.cpp evaluates packed texts as one batch with a mask: every token's attention scans the
// whole ubatch (flash attention skips only whole masked tiles), and a lone text is padded to
// 64 tokens so that it takes the same kernels as a batch. This graph packs texts without
// padding and computes each text's attention over its own rows only (g4r-kernels.h), so
// attention work is the sum of the texts' squares, a text's vector is the same bit for bit
// whatever is evaluated beside it, and a lone query costs its own tokens. The layers are
// those of llama.cpp's `llm_build_bert` (src/models/bert.cpp): token + type + position
// embeddings, layer norm, post-norm attention and a GELU feed-forward, then mean or CLS
// pooling. F16, F32 and Q8_0 products are ours where the CPU has AVX2 and no AVX-512
// (g4r-kernels.h, own_products); the others are ggml's.
#ifndef G4R_ENCODER_H
#define G4R_ENCODER_H

#include "ggml.h"
#include "llama.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace g4r {

struct encoder;
struct encoder_deleter {
    void operator()(encoder *e) const;
};
using encoder_ptr = std::unique_ptr<encoder, encoder_deleter>;

// The encoder for `path` (the file `model` was loaded from), or null with `why` set when this
// graph does not cover the model: an architecture other than "bert", a pooling other than
// mean or CLS, a tensor missing or of another shape; with `own_products_only`, also when a
// product weight would be multiplied by ggml rather than by g4r's own product (own_products).
encoder_ptr encoder_load(const char *path, const llama_model *model, int32_t pooling, bool own_products_only,
                         std::string *why);

// Pooled (not normalised) embeddings of `n_seqs` token sequences laid end to end in `tokens`
// (lengths in `seq_lens`, each 1..the model's window), written as n_seqs x n_embd floats to
// `out`, evaluating at most kEncoderEvalTokens tokens at a time (a longer text alone), in
// order; `n_evals` counts the evaluations. `cancel` is polled before
// each; returns false when it was set. Throws g4r_failure when a graph cannot be allocated or
// computed.
bool encoder_embed(encoder &enc, const int32_t *tokens, const int32_t *seq_lens, int32_t n_seqs,
                   float *out, int32_t n_threads, const std::atomic<bool> &cancel,
                   std::atomic<int64_t> &n_evals);

}  // namespace g4r

#endif
