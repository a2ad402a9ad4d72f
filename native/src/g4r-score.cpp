// g4r-score.cpp - log-likelihood of a continuation (g4r_model_score).
#include "g4r-impl.h"

#include <algorithm>

namespace g4r {

namespace {

// Evaluate toks[0, n) at positions pos0, pos0+1, ... of sequence `sid` alone, in chunks of
// n_batch; appends them to its past. Logits are computed for the last token, and for every
// token from index `logits_from` on: on_logits(i, logits) is called for each i in
// [logits_from, n) with that token's float[n_vocab] logits, valid during the call.
template <typename F>
void decode_tokens_with(g4r_model *m, int32_t sid, const llama_token *toks, int32_t n, int32_t pos0,
                        int32_t n_batch, int32_t logits_from, F &&on_logits) {
    g4r_seq &s = m->seqs[sid];
    owned_batch owned(n_batch);
    llama_batch &batch = owned.batch;
    for (int32_t start = 0; start < n; start += n_batch) {
        int32_t k = std::min(n_batch, n - start);
        batch.n_tokens = k;
        for (int32_t i = 0; i < k; ++i) {
            batch.token[i] = toks[start + i];
            batch.pos[i] = pos0 + start + i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = sid;
            batch.logits[i] = (start + i == n - 1 || start + i >= logits_from) ? 1 : 0;
        }
        int32_t rc = llama_decode(m->ctx, batch);
        ++m->n_evals;
        if (rc != 0) {
            // Part of this batch may be in the cache: drop it so the cache matches s.past.
            llama_memory_seq_rm(llama_get_memory(m->ctx), sid, pos0 + start, -1);
            if (rc == 2) m->cancel.store(false);
            fail_decode(rc, k);
        }
        s.past.insert(s.past.end(), toks + start, toks + start + k);
        m->n_decoded += k;
        for (int32_t i = std::max(start, logits_from); i < start + k; ++i) {
            const float *logits = llama_get_logits_ith(m->ctx, i - start);
            if (!logits) fail(G4R_ERR_DECODE, "llama.cpp returned no logits for token " + std::to_string(i));
            on_logits(i, logits);
        }
    }
    s.logits_saved = false;
}

}  // namespace

}  // namespace g4r

using namespace g4r;

extern "C" {

g4r_status g4r_model_score(g4r_model *model, int32_t seq, const int32_t *tokens, int32_t n_tokens,
                           int32_t n_prompt, int32_t n_batch, float *logprobs, int32_t *ranks,
                           int32_t *n_reused) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (model->embedding) fail(G4R_ERR_NOT_SUPPORTED, "this is an embedding model: it cannot score text");
    if (!tokens || !logprobs) fail(G4R_ERR_INVALID_ARGUMENT, "tokens and logprobs must not be NULL");
    if (n_prompt < 1 || n_prompt >= n_tokens)
        fail(G4R_ERR_INVALID_ARGUMENT, "need 1 <= n_prompt < n_tokens, got n_prompt " +
                                           std::to_string(n_prompt) + " of " + std::to_string(n_tokens));
    if (n_batch < 1) fail(G4R_ERR_INVALID_ARGUMENT, "n_batch must be >= 1, got " + std::to_string(n_batch));
    check_tokens(model, tokens, n_tokens);
    idle_lock lock(model);
    g4r_seq &s = seq_of(model, seq);
    model->cancel.store(false);
    end_generation(s);
    if (n_tokens > model->n_ctx_seq)
        fail(G4R_ERR_CONTEXT_OVERFLOW, "prompt and continuation have " + std::to_string(n_tokens) +
                                           " tokens but the context window holds " + std::to_string(model->n_ctx_seq));
    int32_t nv = llama_vocab_n_tokens(model->vocab);
    // Keep the cached prefix up to the prompt's last token, whose logits are needed.
    size_t keep = 0;
    size_t limit = static_cast<size_t>(n_prompt - 1);
    while (keep < s.past.size() && keep < limit && s.past[keep] == tokens[keep]) ++keep;
    keep = truncate_seq(model, seq, keep);
    if (n_reused) *n_reused = static_cast<int32_t>(keep);
    int32_t k0 = static_cast<int32_t>(keep);
    int32_t nb = std::min<int32_t>(n_batch, static_cast<int32_t>(llama_n_batch(model->ctx)));
    // Token i's logits predict token i + 1: those of n_prompt - 1 .. n_tokens - 2 are read.
    decode_tokens_with(model, seq, tokens + k0, n_tokens - k0, k0, nb, n_prompt - 1 - k0,
                       [&](int32_t i, const float *logits) {
                           int32_t pos = k0 + i;
                           if (pos + 1 >= n_tokens) return;
                           llama_token next = tokens[pos + 1];
                           double lse = log_sum_exp(logits, nv);
                           logprobs[pos + 1 - n_prompt] = static_cast<float>(logits[next] - lse);
                           if (ranks) {
                               int32_t higher = 0;
                               for (int32_t v = 0; v < nv; ++v) higher += logits[v] > logits[next];
                               ranks[pos + 1 - n_prompt] = higher;
                           }
                       });
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
