// g4r-embed.cpp - pooled embeddings of several token sequences (g4r_model_embed).
#include "g4r-impl.h"

#include <algorithm>
#include <cstring>

using namespace g4r;

extern "C" {

g4r_status g4r_model_embed(g4r_model *model, const int32_t *tokens, const int32_t *seq_lens,
                           int32_t n_seqs, float *out, int32_t dim) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (!model->embedding)
        fail(G4R_ERR_NOT_SUPPORTED, "this model is not an embedding model (its GGUF declares no pooling)");
    if (n_seqs < 0 || (n_seqs > 0 && (!tokens || !seq_lens || !out)))
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid embed arguments");
    int32_t n_embd = llama_model_n_embd_out(model->model);
    if (dim != n_embd) fail(G4R_ERR_INVALID_ARGUMENT, "dim is " + std::to_string(dim) + " but the model's dimension is " + std::to_string(n_embd));
    idle_lock lock(model);
    model->cancel.store(false);
    int32_t cap = static_cast<int32_t>(llama_n_batch(model->ctx));
    int32_t win = model->embd_window;
    int32_t seq_cap = static_cast<int32_t>(llama_n_seq_max(model->ctx)) - 1;  // one for the filler
    int32_t nv = llama_vocab_n_tokens(model->vocab);
    size_t total = 0;
    for (int32_t i = 0; i < n_seqs; ++i) {
        if (seq_lens[i] < 1) fail(G4R_ERR_INVALID_ARGUMENT, "sequence " + std::to_string(i) + " is empty");
        if (seq_lens[i] > win)
            fail(G4R_ERR_CONTEXT_OVERFLOW, "sequence " + std::to_string(i) + " has " + std::to_string(seq_lens[i]) +
                                               " tokens; the model's window is " + std::to_string(win));
        total += static_cast<size_t>(seq_lens[i]);
    }
    for (size_t i = 0; i < total; ++i)
        if (tokens[i] < 0 || tokens[i] >= nv)
            fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    if (model->encoder) {
        if (!encoder_embed(*model->encoder, tokens, seq_lens, n_seqs, out, model->n_threads, model->cancel,
                           model->n_evals))
            fail(G4R_ERR_CANCELLED, "embedding was cancelled");
        model->n_decoded += static_cast<int64_t>(total);
        return G4R_OK;
    }

    owned_batch owned(cap);
    llama_batch &batch = owned.batch;
    llama_memory_t mem = llama_get_memory(model->ctx);
    size_t offset = 0;
    int32_t first = 0;
    while (first < n_seqs) {
        batch.n_tokens = 0;
        int32_t last = first;
        while (last < n_seqs && last - first < seq_cap && batch.n_tokens + seq_lens[last] <= cap) {
            for (int32_t j = 0; j < seq_lens[last]; ++j) {
                int32_t k = batch.n_tokens++;
                batch.token[k] = tokens[offset + j];
                batch.pos[k] = j;
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = last - first;
                batch.logits[k] = 1;
            }
            offset += static_cast<size_t>(seq_lens[last]);
            ++last;
        }
        int32_t n_real = batch.n_tokens;
        int32_t pad_to = std::min(kEmbedMinDecodeTokens, cap);
        for (int32_t j = 0; batch.n_tokens < pad_to; ++j) {  // the filler sequence
            int32_t k = batch.n_tokens++;
            batch.token[k] = batch.token[0];
            batch.pos[k] = j;
            batch.n_seq_id[k] = 1;
            batch.seq_id[k][0] = last - first;
            batch.logits[k] = 1;
        }
        if (mem) llama_memory_clear(mem, true);
        int32_t rc = llama_decode(model->ctx, batch);
        ++model->n_evals;
        if (rc == 2) fail(G4R_ERR_CANCELLED, "embedding was cancelled");
        if (rc != 0) fail(G4R_ERR_DECODE, "llama_decode failed with code " + std::to_string(rc));
        model->n_decoded += n_real;
        for (int32_t s = first; s < last; ++s) {
            const float *e = llama_get_embeddings_seq(model->ctx, s - first);
            if (!e) fail(G4R_ERR_DECODE, "no pooled embedding for sequence " + std::to_string(s));
            std::memcpy(out + static_cast<size_t>(s) * n_embd, e, sizeof(float) * n_embd);
        }
        first = last;
    }
    if (mem) llama_memory_clear(mem, true);
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
