// g4r-scheduler.cpp - the batching scheduler (step: one llama_decode for every sequence, its
// policy in g4r-sched.cpp) and the sequence API: ingest, reset, generate start/next/finish,
// cancel.
#include "g4r-impl.h"

#include <algorithm>

namespace g4r {

namespace {

void finish_seq(g4r_seq &s, int32_t reason) {
    s.exhausted = true;
    s.final_reason = reason;
}

void fail_seq(g4r_seq &s, g4r_status status, const std::string &msg) {
    s.error = status;
    s.error_msg = msg;
    finish_seq(s, G4R_STOP_LENGTH);
}

// Sample the next token of sequence `s` from batch row `row` of the context, or (row < 0)
// from its saved prompt logits, and queue it. A failure of the sampler (a grammar that admits
// no token) fails this sequence alone.
void sample_into(g4r_model *m, g4r_seq &s, int32_t row) {
    try {
        int32_t nv = llama_vocab_n_tokens(m->vocab);
        const float *logits = nullptr;
        llama_token tok;
        if (row >= 0) {
            logits = llama_get_logits_ith(m->ctx, row);
            if (!logits) fail(G4R_ERR_DECODE, "llama.cpp returned no logits");
            tok = llama_sampler_sample(s.sampler, m->ctx, row);
        } else {
            logits = s.prompt_logits.data();
            std::vector<llama_token_data> cand(static_cast<size_t>(nv));
            for (int32_t i = 0; i < nv; ++i) cand[i] = llama_token_data{i, logits[i], 0.0f};
            llama_token_data_array cur{cand.data(), cand.size(), -1, false};
            llama_sampler_apply(s.sampler, &cur);
            if (cur.selected < 0 || cur.selected >= static_cast<int64_t>(cur.size))
                fail(G4R_ERR_DECODE, "the sampler selected no token");
            tok = cur.data[cur.selected].id;
            llama_sampler_accept(s.sampler, tok);
            s.logits_saved = false;
        }
        produced p;
        p.token = tok;
        if (llama_vocab_is_eog(m->vocab, tok)) {
            p.reason = G4R_STOP_EOG;
            s.ready.push_back(p);
            finish_seq(s, G4R_STOP_EOG);
            return;
        }
        if (s.n_logprobs >= 0) record_logprobs(p, logits, nv, s.n_logprobs);
        s.ready.push_back(p);
        s.pending = tok;
        if (s.budget > 0 && --s.budget == 0) finish_seq(s, G4R_STOP_LENGTH);
    } catch (const g4r_failure &e) {
        fail_seq(s, e.status, e.what());
    } catch (const std::exception &e) {
        fail_seq(s, s.has_grammar ? G4R_ERR_GRAMMAR : G4R_ERR_INTERNAL,
                 std::string(s.has_grammar ? "the grammar admits no further token: " : "sampling failed: ") + e.what());
    }
}

// What the scheduler's policy (g4r-sched.h) reads of a sequence.
sched_seq view_of(const g4r_seq &s) {
    sched_seq v;
    v.generating = s.sampler && !s.exhausted && s.error == G4R_OK;
    v.n_ready = s.ready.size();
    v.has_pending = s.pending >= 0;
    v.logits_saved = s.logits_saved;
    v.n_past = s.past.size();
    v.n_todo = s.todo.size();
    v.chunk = s.chunk;
    v.order = s.order;
    return v;
}

// One step of continuous batching (llama.cpp's server loop, tools/server): sequences whose next
// token follows saved prompt logits sample it without evaluating; then one llama_decode of
// what the policy (sched_plan_step) puts in the batch: the pending token of every generating
// sequence that wants one, then prompt chunks in arrival order; then every sequence whose
// logits came out samples its next token. Returns false when there was nothing to do.
// A failed llama_decode leaves every sequence as it was before the step (their tokens are
// evaluated again by the next step); a cancelled one throws G4R_ERR_CANCELLED to the caller.
// Called holding `lock` on m->mu with no step running; the lock is released while
// llama_decode runs and held again when step() returns or throws.
bool step(g4r_model *m, std::unique_lock<std::mutex> &lock) {
    bool did = false;
    for (auto &s : m->seqs)
        if (sched_samples_saved(view_of(s))) {
            sample_into(m, s, -1);
            did = true;
        }

    std::vector<sched_seq> &views = m->sched_views;
    views.resize(m->seqs.size());
    for (size_t i = 0; i < m->seqs.size(); ++i) views[i] = view_of(m->seqs[i]);
    sched_limits limits;
    limits.n_batch = static_cast<int32_t>(llama_n_batch(m->ctx));
    limits.n_ubatch = static_cast<int32_t>(llama_n_ubatch(m->ctx));
    limits.n_ctx_seq = m->n_ctx_seq;
    sched_plan &plan = m->plan;
    sched_plan_step(views, limits, plan);

    for (int32_t sid : plan.window_full) {
        produced p;
        p.reason = G4R_STOP_LENGTH;
        m->seqs[sid].ready.push_back(p);
        finish_seq(m->seqs[sid], G4R_STOP_LENGTH);
        did = true;
    }
    llama_batch &b = m->step_batch;
    b.n_tokens = 0;
    auto add = [&b](llama_token t, llama_pos pos, int32_t sid, bool logits) {
        int32_t k = b.n_tokens++;
        b.token[k] = t;
        b.pos[k] = pos;
        b.n_seq_id[k] = 1;
        b.seq_id[k][0] = sid;
        b.logits[k] = logits ? 1 : 0;
    };
    for (const sched_row &r : plan.rows) {
        g4r_seq &s = m->seqs[r.seq];
        if (!r.prompt) {
            add(s.pending, static_cast<llama_pos>(s.past.size()), r.seq, true);
            continue;
        }
        for (int32_t i = 0; i < r.n; ++i)
            add(s.todo[i], static_cast<llama_pos>(s.past.size() + i), r.seq, r.logits && i == r.n - 1);
    }
    if (b.n_tokens == 0) return did;

    // Evaluate without `mu`: other consumers take their queued tokens meanwhile. Nothing else
    // touches the sequences of this batch or the context until `stepping` is cleared.
    int32_t rc;
    {
        struct unlocked {
            g4r_model *m;
            std::unique_lock<std::mutex> &lock;
            unlocked(g4r_model *model, std::unique_lock<std::mutex> &l) : m(model), lock(l) {
                m->stepping = true;
                lock.unlock();
            }
            ~unlocked() {
                lock.lock();
                m->stepping = false;
                m->idle.notify_all();
            }
        } during(m, lock);
        rc = llama_decode(m->ctx, b);
    }
    ++m->n_evals;
    if (rc != 0) {
        llama_memory_t mem = llama_get_memory(m->ctx);
        for (const auto &r : plan.rows)
            llama_memory_seq_rm(mem, r.seq, static_cast<llama_pos>(m->seqs[r.seq].past.size()), -1);
        if (rc == 2) {
            m->cancel.store(false);  // this cancellation is spent: the other callers go on
            fail_decode(rc, b.n_tokens);
        }
        std::string why = "llama_decode failed with code " + std::to_string(rc) +
                          (t_last_log_error.empty() ? "" : ": " + t_last_log_error);
        for (const auto &r : plan.rows)
            fail_seq(m->seqs[r.seq], rc == 1 ? G4R_ERR_CONTEXT_OVERFLOW : G4R_ERR_DECODE, why);
        return true;
    }
    m->n_decoded += b.n_tokens;
    int32_t nv = llama_vocab_n_tokens(m->vocab);
    for (const auto &r : plan.rows) {
        g4r_seq &s = m->seqs[r.seq];
        int32_t out_row = r.first + r.n - 1;
        if (!r.prompt) {
            s.past.push_back(s.pending);
            s.pending = -1;
            s.logits_saved = false;
            sample_into(m, s, out_row);
            continue;
        }
        s.past.insert(s.past.end(), s.todo.begin(), s.todo.begin() + r.n);
        s.todo.erase(s.todo.begin(), s.todo.begin() + r.n);
        if (!s.todo.empty()) continue;
        const float *logits = llama_get_logits_ith(m->ctx, out_row);
        if (!logits) {
            fail_seq(s, G4R_ERR_DECODE, "llama.cpp returned no logits for the prompt");
            continue;
        }
        s.prompt_logits.assign(logits, logits + nv);
        s.prompt_n = s.past.size();
        s.logits_saved = true;
        if (sched_samples_saved(view_of(s))) sample_into(m, s, -1);
    }
    return true;
}

}  // namespace

[[noreturn]] void fail_decode(int32_t rc, int32_t n_tokens) {
    if (rc == 2) fail(G4R_ERR_CANCELLED, "evaluation was cancelled");
    if (rc == 1) fail(G4R_ERR_CONTEXT_OVERFLOW, "no room in the KV cache for " + std::to_string(n_tokens) + " tokens");
    fail(G4R_ERR_DECODE, "llama_decode failed with code " + std::to_string(rc) +
                             (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
}

void end_generation(g4r_seq &s) {
    if (s.sampler) {
        llama_sampler_free(s.sampler);
        s.sampler = nullptr;
    }
    s.pending = -1;
    s.ready.clear();
    s.has_last = false;
    s.exhausted = false;
    s.error = G4R_OK;
    s.error_msg.clear();
}

g4r_seq &seq_of(g4r_model *m, int32_t seq) {
    if (seq < 0 || seq >= static_cast<int32_t>(m->seqs.size()))
        fail(G4R_ERR_INVALID_ARGUMENT, "sequence " + std::to_string(seq) + " does not exist (the model has " +
                                           std::to_string(m->seqs.size()) + ")");
    return m->seqs[seq];
}

void require_generator(g4r_model *m) {
    require_ctx(m);
    if (m->embedding) fail(G4R_ERR_NOT_SUPPORTED, "this is an embedding model: it cannot generate text");
}

void check_tokens(g4r_model *m, const int32_t *tokens, int32_t n) {
    int32_t nv = llama_vocab_n_tokens(m->vocab);
    for (int32_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= nv)
            fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
}

size_t truncate_seq(g4r_model *m, int32_t sid, size_t keep) {
    g4r_seq &s = m->seqs[sid];
    s.todo.clear();
    if (keep < s.past.size()) {
        llama_memory_t mem = llama_get_memory(m->ctx);
        if (!llama_memory_seq_rm(mem, sid, static_cast<llama_pos>(keep), -1)) {
            llama_memory_seq_rm(mem, sid, -1, -1);  // this cache cannot drop a suffix: start over
            keep = 0;
        }
        s.past.resize(keep);
    }
    if (s.prompt_n > keep) s.prompt_n = 0;  // its prefix is being rewritten
    s.logits_saved = false;
    return keep;
}

}  // namespace g4r

using namespace g4r;

extern "C" {

g4r_status g4r_model_ingest(g4r_model *model, int32_t seq, const int32_t *tokens, int32_t n_tokens,
                            int32_t n_batch, int32_t *n_reused) {
    G4R_GUARD_BEGIN
    clear_error();
    require_generator(model);
    if (!tokens || n_tokens < 1) fail(G4R_ERR_INVALID_ARGUMENT, "the prompt has no tokens");
    if (n_batch < 1) fail(G4R_ERR_INVALID_ARGUMENT, "n_batch must be >= 1, got " + std::to_string(n_batch));
    check_tokens(model, tokens, n_tokens);
    idle_lock lock(model);
    g4r_seq &s = seq_of(model, seq);
    model->cancel.store(false);
    end_generation(s);
    if (n_tokens > model->n_ctx_seq)
        fail(G4R_ERR_CONTEXT_OVERFLOW, "the prompt has " + std::to_string(n_tokens) +
                                           " tokens but the context window holds " + std::to_string(model->n_ctx_seq));
    size_t common = 0;
    auto &past = s.past;
    while (common < past.size() && common < static_cast<size_t>(n_tokens) && past[common] == tokens[common]) ++common;
    // The whole prompt is cached: reuse its saved logits, or evaluate the last token again.
    bool reuse_logits = common == static_cast<size_t>(n_tokens) && s.prompt_n == common;
    if (common == static_cast<size_t>(n_tokens) && !reuse_logits) --common;
    size_t kept = truncate_seq(model, seq, common);
    if (kept < common) reuse_logits = false;
    if (n_reused) *n_reused = static_cast<int32_t>(kept);
    if (reuse_logits) {
        s.logits_saved = true;
        return G4R_OK;
    }
    s.todo.assign(tokens + kept, tokens + n_tokens);
    s.chunk = std::min<int32_t>(n_batch, static_cast<int32_t>(llama_n_batch(model->ctx)));
    s.order = ++model->n_ingests;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_reset(g4r_model *model) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    idle_lock lock(model);
    llama_memory_t mem = llama_get_memory(model->ctx);
    if (mem) llama_memory_clear(mem, true);
    for (auto &s : model->seqs) {
        end_generation(s);
        s.past.clear();
        s.todo.clear();
        s.prompt_n = 0;
        s.logits_saved = false;
    }
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_generate_start(g4r_model *model, int32_t seq, const g4r_sampler_params *params) {
    G4R_GUARD_BEGIN
    clear_error();
    require_generator(model);
    if (check_sampler_params(params) != G4R_OK) return G4R_ERR_INVALID_ARGUMENT;
    idle_lock lock(model);
    g4r_seq &s = seq_of(model, seq);
    model->cancel.store(false);
    if (s.past.empty() && s.todo.empty()) fail(G4R_ERR_STATE, "nothing has been ingested: call g4r_model_ingest first");
    end_generation(s);

    const g4r_sampler_params &p = *params;
    s.sampler = make_sampler_chain(model->vocab, p, model->n_ctx_seq, s.past, s.todo);
    s.has_grammar = p.grammar && p.grammar[0];
    s.budget = p.n_predict;
    s.n_logprobs = p.n_logprobs;
    if (!s.todo.empty() || s.logits_saved) return G4R_OK;
    // The prompt was evaluated by an earlier generation whose last token is not evaluated
    // (g4r_model_ingest kept it all): evaluate that token again for fresh logits.
    llama_token t = s.past.back();
    truncate_seq(model, seq, s.past.size() - 1);
    s.todo.assign(1, t);
    s.order = ++model->n_ingests;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_generate_next(g4r_model *model, int32_t seq, int32_t *token, char *buf,
                             int32_t buf_size, int32_t *n_bytes, int32_t *reason) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (!token || !n_bytes || !reason || (!buf && buf_size > 0) || buf_size < 0)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid arguments");
    std::unique_lock<std::mutex> lock(model->mu);
    g4r_seq &s = seq_of(model, seq);
    if (!s.sampler) fail(G4R_ERR_STATE, "no active generation: call g4r_generate_start first");
    *n_bytes = 0;
    *token = -1;
    s.has_last = false;
    while (s.ready.empty()) {
        if (s.error != G4R_OK) {
            g4r_status st = s.error;
            s.error = G4R_OK;
            fail(st, s.error_msg);
        }
        if (s.exhausted) {
            *reason = s.final_reason;
            return G4R_OK;
        }
        if (model->stepping || model->n_waiting > 0) {  // a step runs, or yields to a caller
            model->idle.wait(lock);
            continue;
        }
        if (!step(model, lock)) fail(G4R_ERR_INTERNAL, "the generation cannot advance");
    }
    produced p = s.ready.front();
    s.ready.pop_front();
    *reason = p.reason;
    if (p.reason != G4R_CONTINUE) return G4R_OK;
    int32_t n = llama_token_to_piece(model->vocab, p.token, buf, buf_size, 0, false);
    if (n < 0) {
        s.ready.push_front(p);
        *n_bytes = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "piece buffer too small");
    }
    s.last = p;
    s.has_last = true;
    *token = p.token;
    *n_bytes = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_generate_finish(g4r_model *model, int32_t seq) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    idle_lock lock(model);
    if (!model->ctx) return G4R_OK;
    end_generation(seq_of(model, seq));
    return G4R_OK;
    G4R_GUARD_END
}

void g4r_model_cancel(g4r_model *model) {
    if (model) model->cancel.store(true);
}

}  // extern "C"
