// g4r.cpp - implementation of g4r.h over llama.cpp's C API.
//
// Only this file talks to llama.cpp. Every exported body is wrapped in G4R_GUARD so that no
// C++ exception crosses the ABI, and every failure sets the thread-local status and message.

#include "g4r.h"

#include "chat.h"                    // llama.cpp common: chat formats, tool calls, reasoning
#include "ggml-backend.h"
#include "json-schema-to-grammar.h"  // llama.cpp common: JSON schema -> GBNF
#include "llama.h"
#include "log.h"                     // llama.cpp common: its logger (silenced, see ensure_backend)

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

thread_local std::string t_error;
thread_local g4r_status t_status = G4R_OK;
// The last error-level line llama.cpp logged on this thread: it usually says why a load failed.
thread_local std::string t_last_log_error;

g4r_log_callback g_log_cb = nullptr;
void *g_log_ud = nullptr;
std::once_flag g_backend_once;

// An embedding context holds this many windows of the model, so that many short texts are
// evaluated together (one llama_decode) while a single sequence still fits one ubatch.
constexpr int32_t kEmbedWindowsPerBatch = 1;
// Sequences per embedding context; one is kept for the filler sequence below.
constexpr int32_t kEmbedSeqMax = 64;
// ggml's CPU flash attention takes its tiled path (F32 accumulation, whole all-masked tiles
// skipped) only for ubatches of at least GGML_FA_TILE_Q (64) tokens; smaller ones go through a
// path that accumulates V in F16. An embedding call pads every decode to this many tokens with a
// throw-away sequence so that a text's vector does not depend on how many other texts share
// its batch (measured: 1.2e-4 apart without the padding, see tests/models/test_embed4all.py).
constexpr int32_t kEmbedMinDecodeTokens = 64;
// A CPU generation context uses plain attention while its score matrix (n_ubatch x n_ctx x
// n_head floats) is at most this many bytes; see g4r_model_load in g4r.h.
constexpr double kPlainAttnMaxScoreBytes = 128.0 * 1024 * 1024;
// Parallel sequences of one generation context (llama.cpp allows 256).
constexpr int32_t kMaxSeq = 64;

struct g4r_failure : std::runtime_error {
    g4r_status status;
    g4r_failure(g4r_status s, const std::string &msg) : std::runtime_error(msg), status(s) {}
};

[[noreturn]] void fail(g4r_status s, const std::string &msg) { throw g4r_failure(s, msg); }

g4r_status set_error(g4r_status s, const std::string &msg) {
    t_status = s;
    t_error = msg;
    return s;
}

void clear_error() {
    t_status = G4R_OK;
    t_error.clear();
}

void log_trampoline(enum ggml_log_level level, const char *text, void * /*ud*/) {
    if (level == GGML_LOG_LEVEL_ERROR && text) {
        t_last_log_error = text;
        while (!t_last_log_error.empty() &&
               (t_last_log_error.back() == '\n' || t_last_log_error.back() == ' ')) {
            t_last_log_error.pop_back();
        }
    }
    g4r_log_callback cb = g_log_cb;
    if (cb) cb(static_cast<int32_t>(level), text ? text : "", g_log_ud);
}

// The folder this library was loaded from ("" if unknown): ggml's backend modules lie beside it.
std::string own_directory() {
#if defined(_WIN32)
    HMODULE self = nullptr;
    char path[MAX_PATH];
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            reinterpret_cast<LPCSTR>(&own_directory), &self))
        return {};
    DWORD n = GetModuleFileNameA(self, path, MAX_PATH);
    std::string p(path, n);
    size_t cut = p.find_last_of("\\/");
#else
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void *>(&own_directory), &info) || !info.dli_fname) return {};
    std::string p(info.dli_fname);
    size_t cut = p.find_last_of('/');
#endif
    return cut == std::string::npos ? std::string(".") : p.substr(0, cut);
}

void ensure_backend() {
    std::call_once(g_backend_once, [] {
        llama_log_set(log_trampoline, nullptr);
#ifdef GGML_BACKEND_DL
        // ggml's backends are modules beside this library: for the CPU, the variant whose
        // instruction sets the running CPU has (ggml scores each by cpuid); GPU backends that
        // were built. GGML_BACKEND_PATH names one more, as in llama.cpp's tools.
        std::string dir = own_directory();
        ggml_backend_load_all_from_path(dir.empty() ? nullptr : dir.c_str());
#endif
        llama_backend_init();
        // llama.cpp's common/ logs through a worker thread that writes to stderr and has no
        // callback; the library never prints, so that logger is silenced (its failures reach
        // us as exceptions, which become statuses and messages).
        common_log_set_verbosity_thold(-1);
    });
}

void g4r_log(int32_t level, const std::string &msg) {
    g4r_log_callback cb = g_log_cb;
    if (cb) cb(level, (msg + "\n").c_str(), g_log_ud);
}

int32_t default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    // ggml's own default is the number of physical cores; without a portable way to count
    // them here, use all logical CPUs up to 4 beyond which hyper-threads rarely help.
    if (n == 0) n = 4;
    return static_cast<int32_t>(std::min(n, 8u));
}

std::string lower(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool is_gpu(ggml_backend_dev_t dev) {
    auto t = ggml_backend_dev_type(dev);
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

bool is_accel(ggml_backend_dev_t dev) { return ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_ACCEL; }

// The registered devices that `keep` selects, in registry order.
std::vector<ggml_backend_dev_t> devices_where(bool (*keep)(ggml_backend_dev_t)) {
    std::vector<ggml_backend_dev_t> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (keep(d)) out.push_back(d);
    }
    return out;
}

std::vector<ggml_backend_dev_t> gpu_devices() { return devices_where(is_gpu); }

// Accelerator backends loaded (ggml's BLAS backend in a G4R_BLAS=mkl build): llama.cpp adds
// them to every context and hands them the matrix products of 32 or more rows.
std::vector<ggml_backend_dev_t> accel_devices() { return devices_where(is_accel); }

// Static storage for lower-cased backend names (ggml's registry names are static too).
const char *backend_name_of(ggml_backend_dev_t dev) {
    static std::mutex mu;
    static std::vector<std::unique_ptr<std::string>> names;
    std::string n = lower(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
    std::lock_guard<std::mutex> lock(mu);
    for (auto &p : names)
        if (*p == n) return p->c_str();
    names.push_back(std::make_unique<std::string>(n));
    return names.back()->c_str();
}

// One produced token waiting to be taken by g4r_generate_next (or the reason there is none).
struct produced {
    llama_token token = -1;
    int32_t reason = G4R_CONTINUE;
    float logprob = 0.0f;  // valid when the sequence records log-probabilities
    int32_t n_top = 0;
    llama_token top_ids[G4R_MAX_TOP_LOGPROBS];
    float top_lps[G4R_MAX_TOP_LOGPROBS];
};

// The state of one sequence of the KV cache (llama.cpp seq_id == its index). Every field is
// guarded by g4r_model::mu.
struct g4r_seq {
    std::vector<llama_token> past;  // evaluated tokens held in the cache
    std::vector<llama_token> todo;  // ingested tokens still to evaluate (they follow past)
    int32_t chunk = 512;            // prompt tokens evaluated per step (ingest's n_batch)
    uint64_t order = 0;             // arrival order of the latest ingest (prompts go first in)

    // Logits of the last token of the latest ingested prompt, valid while past[0, prompt_n)
    // is unchanged (prompt_n == 0: none). Asking the same prompt again samples its first token
    // from these instead of re-evaluating the last token alone: llama.cpp's kernels are not
    // batch-invariant (one row and a tile of rows round differently), so that re-evaluation
    // could flip a near-tie and make greedy output depend on what was asked before.
    std::vector<float> prompt_logits;
    size_t prompt_n = 0;
    bool logits_saved = false;  // the next sample reads prompt_logits, not a batch row

    // generation
    llama_sampler *sampler = nullptr;
    bool has_grammar = false;
    bool exhausted = false;          // no more tokens will be produced (see final_reason)
    int32_t final_reason = G4R_STOP_LENGTH;
    llama_token pending = -1;        // produced, not yet evaluated
    int32_t n_logprobs = -1;         // alternatives recorded per token; -1: no log-probabilities
    int32_t budget = -1;             // tokens it may still produce; -1: no limit
    std::deque<produced> ready;      // produced, not yet taken by g4r_generate_next
    produced last;                   // the token g4r_generate_next returned last
    bool has_last = false;
    g4r_status error = G4R_OK;       // a failure of this sequence alone, reported once
    std::string error_msg;

    ~g4r_seq() {
        if (sampler) llama_sampler_free(sampler);
    }
};

}  // namespace

struct g4r_model {
    llama_model *model = nullptr;
    llama_context *ctx = nullptr;
    const llama_vocab *vocab = nullptr;
    std::mutex mu;
    std::atomic<bool> cancel{false};
    // A step evaluates its batch with `mu` released (see step()): while `stepping`, callers
    // may take tokens already produced, and everything that changes a sequence or the cache
    // waits on `idle`. `n_waiting` counts those waiters; no new step starts while any waits,
    // so a new prompt joins at the next step boundary, as a task queue would let it.
    bool stepping = false;
    int32_t n_waiting = 0;
    std::condition_variable idle;

    bool embedding = false;
    int32_t embd_window = 0;  // embedding models: tokens of one sequence (llama.cpp pads n_ctx)
    int32_t n_threads = 1;
    bool flash_attn = false;  // flash attention requested (ENABLED, or AUTO: on where supported)
    int32_t pooling = 0;
    int32_t n_ctx_seq = 0;    // generation: tokens one sequence may hold
    std::vector<g4r_seq> seqs;  // generation: one per parallel sequence
    uint64_t n_ingests = 0;
    std::atomic<int64_t> n_decoded{0};
    std::atomic<int64_t> n_evals{0};  // llama_decode calls
    llama_batch step_batch{};  // generation: the batch of step(), n_batch tokens
    bool has_step_batch = false;

    ggml_backend_dev_t device = nullptr;

    // llama.cpp chat-template state (common/chat.h), per template source ("" = the GGUF's),
    // built on first use; guarded by chat_mu so chat formatting never waits for a decode.
    std::mutex chat_mu;
    std::map<std::string, common_chat_templates_ptr> chat_templates;

    ~g4r_model() {
        seqs.clear();
        if (has_step_batch) llama_batch_free(step_batch);
        if (ctx) llama_free(ctx);
        if (model) llama_model_free(model);
    }
};

namespace {

bool abort_cb(void *data) {
    auto *m = static_cast<g4r_model *>(data);
    return m->cancel.load(std::memory_order_relaxed);
}

void require_ctx(g4r_model *m) {
    if (!m) fail(G4R_ERR_INVALID_ARGUMENT, "model handle is NULL");
    if (!m->ctx) fail(G4R_ERR_STATE, "the model was loaded vocab-only and has no context");
}

void require_model(g4r_model *m) {
    if (!m) fail(G4R_ERR_INVALID_ARGUMENT, "model handle is NULL");
}

// `mu` held with no step evaluating: what calls that change a sequence, the cache or the
// context hold. Waiting for a running step gives way to no other step (n_waiting).
struct idle_lock {
    g4r_model *m;
    std::unique_lock<std::mutex> lock;
    bool waited = false;
    explicit idle_lock(g4r_model *model) : m(model), lock(model->mu) {
        if (!m->stepping) return;
        waited = true;
        ++m->n_waiting;
        m->idle.wait(lock, [this] { return !m->stepping; });
        --m->n_waiting;
    }
    ~idle_lock() {
        if (waited) m->idle.notify_all();  // steps held back for this call may go on
    }
    idle_lock(const idle_lock &) = delete;
    idle_lock &operator=(const idle_lock &) = delete;
};

std::string meta_str(const llama_model *model, const std::string &key) {
    char buf[256];
    int32_t n = llama_model_meta_val_str(model, key.c_str(), buf, sizeof buf);
    if (n < 0) return {};
    if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, n);
    std::string big(static_cast<size_t>(n) + 1, '\0');
    llama_model_meta_val_str(model, key.c_str(), big.data(), big.size());
    big.resize(n);
    return big;
}

// Repetition penalty with the arithmetic of llama.cpp's penalties sampler (repeat penalty only:
// a logit l of a token seen in the last `last_n` accepted tokens becomes l * p if l <= 0, else
// l / p). llama.cpp's sampler looks every vocabulary entry up in its count map (49,152 hash
// lookups per token for SmolLM2); this one touches only the tokens of the window, so the same
// result costs O(last_n) when the candidates are still in token-id order, which they are at the
// head of our chain. Otherwise it falls back to one scan of the candidates.
struct repeat_penalty_state {
    int32_t last_n;
    float penalty;
    std::deque<llama_token> window;
    std::unordered_map<llama_token, int32_t> count;
};

const char *repeat_penalty_name(const llama_sampler *) { return "g4r-repeat-penalty"; }

void repeat_penalty_accept(llama_sampler *smpl, llama_token token) {
    auto *st = static_cast<repeat_penalty_state *>(smpl->ctx);
    ++st->count[token];
    if (st->window.size() >= static_cast<size_t>(st->last_n)) {
        llama_token old = st->window.front();
        st->window.pop_front();
        if (--st->count[old] == 0) st->count.erase(old);
    }
    st->window.push_back(token);
}

inline void penalise(llama_token_data &d, float penalty) {
    if (d.logit <= 0) d.logit *= penalty;
    else d.logit /= penalty;
}

void repeat_penalty_apply(llama_sampler *smpl, llama_token_data_array *cur_p) {
    auto *st = static_cast<repeat_penalty_state *>(smpl->ctx);
    bool in_order = true;
    for (const auto &kv : st->count) {
        llama_token t = kv.first;
        if (t < 0 || static_cast<size_t>(t) >= cur_p->size || cur_p->data[t].id != t) {
            in_order = false;
            break;
        }
    }
    if (in_order) {
        for (const auto &kv : st->count) penalise(cur_p->data[kv.first], st->penalty);
    } else {
        for (size_t i = 0; i < cur_p->size; ++i)
            if (st->count.count(cur_p->data[i].id)) penalise(cur_p->data[i], st->penalty);
    }
    cur_p->sorted = false;
}

void repeat_penalty_reset(llama_sampler *smpl) {
    auto *st = static_cast<repeat_penalty_state *>(smpl->ctx);
    st->window.clear();
    st->count.clear();
}

llama_sampler *repeat_penalty_init(int32_t last_n, float penalty);

llama_sampler *repeat_penalty_clone(const llama_sampler *smpl) {
    const auto *st = static_cast<const repeat_penalty_state *>(smpl->ctx);
    llama_sampler *copy = repeat_penalty_init(st->last_n, st->penalty);
    *static_cast<repeat_penalty_state *>(copy->ctx) = *st;
    return copy;
}

void repeat_penalty_free(llama_sampler *smpl) { delete static_cast<repeat_penalty_state *>(smpl->ctx); }

llama_sampler_i repeat_penalty_iface() {
    llama_sampler_i i{};
    i.name = repeat_penalty_name;
    i.accept = repeat_penalty_accept;
    i.apply = repeat_penalty_apply;
    i.reset = repeat_penalty_reset;
    i.clone = repeat_penalty_clone;
    i.free = repeat_penalty_free;
    return i;
}

llama_sampler_i g_repeat_penalty_iface = repeat_penalty_iface();

llama_sampler *repeat_penalty_init(int32_t last_n, float penalty) {
    auto st = std::make_unique<repeat_penalty_state>();
    st->last_n = last_n;
    st->penalty = penalty;
    llama_sampler *smpl = llama_sampler_init(&g_repeat_penalty_iface, st.get());
    if (!smpl) throw std::bad_alloc();
    st.release();
    return smpl;
}

// A llama_batch of one sequence id per token, freed on scope exit.
struct owned_batch {
    llama_batch batch;
    explicit owned_batch(int32_t n_tokens) : batch(llama_batch_init(n_tokens, 0, 1)) {}
    ~owned_batch() { llama_batch_free(batch); }
    owned_batch(const owned_batch &) = delete;
    owned_batch &operator=(const owned_batch &) = delete;
};

// Tokens a sequence may hold ahead of its consumer: while the consumer of one sequence has
// this many produced tokens to take, the steps that other consumers run leave it out, so an
// unconsumed stream costs at most this many evaluations and never blocks the others.
constexpr size_t kReadAhead = 4;

[[noreturn]] void fail_decode(int32_t rc, int32_t n_tokens) {
    if (rc == 2) fail(G4R_ERR_CANCELLED, "evaluation was cancelled");
    if (rc == 1) fail(G4R_ERR_CONTEXT_OVERFLOW, "no room in the KV cache for " + std::to_string(n_tokens) + " tokens");
    fail(G4R_ERR_DECODE, "llama_decode failed with code " + std::to_string(rc) +
                             (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
}

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

// log(sum(exp(logits))) over the vocabulary, computed stably around the maximum.
double log_sum_exp(const float *logits, int32_t n_vocab) {
    float mx = *std::max_element(logits, logits + n_vocab);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    return static_cast<double>(mx) + std::log(sum);
}

// p's log-probability and its n most likely alternatives from the raw logits.
void record_logprobs(produced &p, const float *logits, int32_t nv, int32_t n_top) {
    double lse = log_sum_exp(logits, nv);
    p.logprob = static_cast<float>(logits[p.token] - lse);
    int32_t k = std::min(n_top, nv);
    p.n_top = k;
    if (k <= 0) return;
    std::vector<int32_t> ids(static_cast<size_t>(nv));
    for (int32_t i = 0; i < nv; ++i) ids[i] = i;
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [logits](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int32_t i = 0; i < k; ++i) {
        p.top_ids[i] = ids[i];
        p.top_lps[i] = static_cast<float>(logits[ids[i]] - lse);
    }
}

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

// May sequence s produce another token now?
bool wants_token(const g4r_seq &s) {
    return s.sampler && !s.exhausted && s.error == G4R_OK && s.ready.size() < kReadAhead;
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

// One step of continuous batching (llama.cpp's server loop, tools/server): one llama_decode
// holding the pending token of every generating sequence that wants one, then as many prompt
// tokens as the step's budget allows, in arrival order (a sequence's chunk at most). The
// budget is the context's batch size, or its ubatch size while any sequence is generating, so
// that a long prompt is evaluated in chunks between the running sequences' tokens. Then every
// sequence whose logits came out samples its next token. Sequences whose next token follows
// saved prompt logits sample without evaluating. Returns false when there was nothing to do.
// A failed llama_decode leaves every sequence as it was before the step (their tokens are
// evaluated again by the next step); a cancelled one throws G4R_ERR_CANCELLED to the caller.
// Called holding `lock` on m->mu with no step running; the lock is released while
// llama_decode runs and held again when step() returns or throws.
bool step(g4r_model *m, std::unique_lock<std::mutex> &lock) {
    bool did = false;
    for (auto &s : m->seqs)
        if (wants_token(s) && s.pending < 0 && s.todo.empty() && s.logits_saved) {
            sample_into(m, s, -1);
            did = true;
        }

    struct row_of { int32_t sid; int32_t row; int32_t n; bool prompt; };
    std::vector<row_of> rows;
    int32_t cap = static_cast<int32_t>(llama_n_batch(m->ctx));
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
    for (int32_t sid = 0; sid < static_cast<int32_t>(m->seqs.size()); ++sid) {
        g4r_seq &s = m->seqs[sid];
        if (!wants_token(s) || s.pending < 0) continue;
        if (s.past.size() >= static_cast<size_t>(m->n_ctx_seq)) {  // the window is full
            produced p;
            p.reason = G4R_STOP_LENGTH;
            s.ready.push_back(p);
            finish_seq(s, G4R_STOP_LENGTH);
            did = true;
            continue;
        }
        rows.push_back({sid, b.n_tokens, 1, false});
        add(s.pending, static_cast<llama_pos>(s.past.size()), sid, true);
    }
    int32_t budget = rows.empty() ? cap : std::min<int32_t>(cap, static_cast<int32_t>(llama_n_ubatch(m->ctx)));
    budget = std::min(budget, cap - b.n_tokens);
    std::vector<int32_t> waiting;
    for (int32_t sid = 0; sid < static_cast<int32_t>(m->seqs.size()); ++sid)
        if (!m->seqs[sid].todo.empty()) waiting.push_back(sid);
    std::sort(waiting.begin(), waiting.end(),
              [m](int32_t a, int32_t c) { return m->seqs[a].order < m->seqs[c].order; });
    for (int32_t sid : waiting) {
        if (budget <= 0) break;
        g4r_seq &s = m->seqs[sid];
        int32_t k = std::min({static_cast<int32_t>(s.todo.size()), s.chunk, budget});
        bool last = k == static_cast<int32_t>(s.todo.size());
        rows.push_back({sid, b.n_tokens, k, true});
        for (int32_t i = 0; i < k; ++i)
            add(s.todo[i], static_cast<llama_pos>(s.past.size() + i), sid, last && i == k - 1);
        budget -= k;
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
        for (const auto &r : rows)
            llama_memory_seq_rm(mem, r.sid, static_cast<llama_pos>(m->seqs[r.sid].past.size()), -1);
        if (rc == 2) {
            m->cancel.store(false);  // this cancellation is spent: the other callers go on
            fail_decode(rc, b.n_tokens);
        }
        std::string why = "llama_decode failed with code " + std::to_string(rc) +
                          (t_last_log_error.empty() ? "" : ": " + t_last_log_error);
        for (const auto &r : rows) fail_seq(m->seqs[r.sid], rc == 1 ? G4R_ERR_CONTEXT_OVERFLOW : G4R_ERR_DECODE, why);
        return true;
    }
    m->n_decoded += b.n_tokens;
    int32_t nv = llama_vocab_n_tokens(m->vocab);
    for (const auto &r : rows) {
        g4r_seq &s = m->seqs[r.sid];
        int32_t out_row = r.row + r.n - 1;
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
        if (wants_token(s) && s.pending < 0) sample_into(m, s, -1);
    }
    return true;
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

// Keep the first `keep` tokens of sequence sid in the cache and drop the rest (and any
// tokens still to evaluate); returns how many were kept.
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

}  // namespace

#define G4R_GUARD_BEGIN try {
#define G4R_GUARD_END                                                       \
    }                                                                       \
    catch (const g4r_failure &e) {                                          \
        return set_error(e.status, e.what());                               \
    }                                                                       \
    catch (const std::bad_alloc &) {                                        \
        return set_error(G4R_ERR_INTERNAL, "out of memory");                \
    }                                                                       \
    catch (const std::exception &e) {                                       \
        return set_error(G4R_ERR_INTERNAL, std::string("internal error: ") + e.what()); \
    }                                                                       \
    catch (...) {                                                           \
        return set_error(G4R_ERR_INTERNAL, "unknown internal error");       \
    }

extern "C" {

int32_t g4r_abi_version(void) { return G4R_ABI_VERSION; }

const char *g4r_last_error(void) { return t_error.c_str(); }

g4r_status g4r_last_status(void) { return t_status; }

void g4r_log_set(g4r_log_callback callback, void *user_data) {
    g_log_ud = user_data;
    g_log_cb = callback;
    try {
        ensure_backend();
    } catch (...) {
    }
}

const char *g4r_system_info(void) {
    try {
        ensure_backend();
        // llama.cpp lists the CPU backend's features; accelerators (a BLAS backend) are named
        // after them, since the scheduler hands them the large matrix products.
        static const std::string info = [] {
            std::string s = llama_print_system_info();
            for (ggml_backend_dev_t dev : accel_devices())
                s += std::string(" ACCEL: ") + ggml_backend_dev_name(dev) + " (" +
                     ggml_backend_dev_description(dev) + ") |";
            return s;
        }();
        return info.c_str();
    } catch (...) {
        return "";
    }
}

int32_t g4r_gpu_count(void) {
    try {
        ensure_backend();
        return static_cast<int32_t>(gpu_devices().size());
    } catch (...) {
        return 0;
    }
}

g4r_status g4r_gpu_info(int32_t index, const char **name, const char **description,
                        const char **backend) {
    G4R_GUARD_BEGIN
    clear_error();
    ensure_backend();
    auto gpus = gpu_devices();
    if (index < 0 || static_cast<size_t>(index) >= gpus.size())
        fail(G4R_ERR_NOT_FOUND, "no GPU device with index " + std::to_string(index) + " (" +
                                    std::to_string(gpus.size()) + " available)");
    if (name) *name = ggml_backend_dev_name(gpus[index]);
    if (description) *description = ggml_backend_dev_description(gpus[index]);
    if (backend) *backend = backend_name_of(gpus[index]);
    return G4R_OK;
    G4R_GUARD_END
}

g4r_model *g4r_model_load(const char *path, int32_t n_ctx, int32_t n_gpu_layers,
                          const char *device, int32_t n_threads, uint32_t flags, int32_t n_seq) {
    try {
        clear_error();
        ensure_backend();
        if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
            fail(G4R_ERR_NOT_FOUND, "no CPU backend: none of ggml's CPU modules (libggml-cpu*.so) beside the "
                                    "native library in '" + own_directory() + "' loads on this CPU (python -m "
                                    "gpt4all_rag.system names the flags each one needs)");
        if (!path) fail(G4R_ERR_INVALID_ARGUMENT, "path is NULL");
        if (n_ctx < 0) fail(G4R_ERR_INVALID_ARGUMENT, "n_ctx must be >= 0, got " + std::to_string(n_ctx));
        if (n_seq < 1 || n_seq > kMaxSeq)
            fail(G4R_ERR_INVALID_ARGUMENT, "n_seq must be in [1, " + std::to_string(kMaxSeq) + "], got " + std::to_string(n_seq));
        const uint32_t known = G4R_LOAD_VOCAB_ONLY | G4R_LOAD_FLASH_ATTN_ON | G4R_LOAD_FLASH_ATTN_OFF;
        if ((flags & ~known) != 0 ||
            ((flags & G4R_LOAD_FLASH_ATTN_ON) && (flags & G4R_LOAD_FLASH_ATTN_OFF)))
            fail(G4R_ERR_INVALID_ARGUMENT, "invalid load flags " + std::to_string(flags));
        FILE *f = std::fopen(path, "rb");
        if (!f) fail(G4R_ERR_IO, std::string("cannot open model file: ") + path + ": " + std::strerror(errno));
        char magic[4] = {0, 0, 0, 0};
        size_t got = std::fread(magic, 1, 4, f);
        std::fclose(f);
        if (got != 4 || std::memcmp(magic, "GGUF", 4) != 0)
            fail(G4R_ERR_MODEL_LOAD, std::string("not a GGUF file (bad magic): ") + path);

        auto m = std::make_unique<g4r_model>();
        m->n_threads = n_threads > 0 ? n_threads : default_threads();

        llama_model_params mp = llama_model_default_params();
        mp.vocab_only = (flags & G4R_LOAD_VOCAB_ONLY) != 0;
        ggml_backend_dev_t devs[2] = {nullptr, nullptr};
        std::string dev = device ? lower(device) : "";
        if (dev.empty() || dev == "cpu") {
            mp.devices = devs;  // empty list: CPU only
            mp.n_gpu_layers = 0;
        } else {
            auto gpus = gpu_devices();
            ggml_backend_dev_t chosen = nullptr;
            for (auto d : gpus) {
                if (dev == "gpu" || dev == backend_name_of(d) || dev == lower(ggml_backend_dev_name(d)) ||
                    dev == lower(ggml_backend_dev_description(d))) {
                    chosen = d;
                    break;
                }
            }
            if (!chosen) {
                std::string avail;
                for (auto d : gpus) avail += std::string(avail.empty() ? "" : ", ") + ggml_backend_dev_name(d) + " (" + ggml_backend_dev_description(d) + ")";
                fail(G4R_ERR_NOT_FOUND, "no GPU device matches '" + std::string(device) +
                                            "'; available: " + (avail.empty() ? "none (CPU-only build or no GPU)" : avail));
            }
            devs[0] = chosen;
            mp.devices = devs;
            mp.n_gpu_layers = n_gpu_layers;
            m->device = chosen;
        }

        t_last_log_error.clear();
        m->model = llama_model_load_from_file(path, mp);
        if (!m->model)
            fail(G4R_ERR_MODEL_LOAD, std::string("llama.cpp could not load ") + path +
                                         (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
        m->vocab = llama_model_get_vocab(m->model);
        if (mp.vocab_only) return m.release();

        std::string arch = meta_str(m->model, "general.architecture");
        std::string pooling = meta_str(m->model, arch + ".pooling_type");
        m->embedding = !pooling.empty() && pooling != "0";

        llama_context_params cp = llama_context_default_params();
        int32_t n_train = llama_model_n_ctx_train(m->model);
        cp.n_threads = m->n_threads;
        cp.n_threads_batch = m->n_threads;
        cp.abort_callback = abort_cb;
        cp.abort_callback_data = m.get();
        cp.no_perf = true;
        if (m->embedding) {
            int32_t win = n_ctx > 0 ? std::min(n_ctx, n_train) : n_train;
            m->embd_window = win;
            cp.n_ctx = static_cast<uint32_t>(win * kEmbedWindowsPerBatch);
            cp.n_batch = cp.n_ctx;
            cp.n_ubatch = cp.n_ctx;  // non-causal attention needs a sequence in one ubatch
            cp.n_seq_max = kEmbedSeqMax;
            cp.embeddings = true;
            // Flash attention skips the masked-out pairs of packed texts: 2.9x the short-text
            // throughput of plain attention, which computes every token pair of the ubatch.
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
        } else {
            uint32_t window = n_ctx > 0 ? static_cast<uint32_t>(n_ctx) : static_cast<uint32_t>(n_train);
            // Every sequence gets the whole window in a stream of its own (llama.cpp pads it
            // to a multiple of 256 cells when n_seq > 1): attention of one sequence reads only
            // its own cells, so parallel sequences do not slow each other's attention down.
            cp.n_ctx = window * static_cast<uint32_t>(n_seq);
            cp.n_seq_max = static_cast<uint32_t>(n_seq);
            cp.kv_unified = n_seq == 1;
            cp.n_batch = std::min<uint32_t>(cp.n_ctx, 2048);
            cp.n_ubatch = std::min<uint32_t>(cp.n_batch, 512);
            cp.swa_full = true;  // keep the whole window so a shared prefix can be reused
            // Plain attention for one sequence on the CPU without a BLAS backend while its
            // score matrix stays small (g4r.h has the rule and the figures). It
            // is not batch-invariant: a prompt evaluated in one ubatch and the same prompt
            // evaluated a few tokens at a time round differently (tinyBLAS
            // tiles vs one-row dot products), e.g. SmolLM2's first logits for "What is the
            // capital of France?" differ by up to 0.9 and flip a 0.13 near-tie between "The"
            // and "La". Flash attention is invariant only below 64 tokens per ubatch (its tiled
            // path starts there), so no choice makes long prompts split-independent;
            // g4r_model_ingest's saved logits keep the same prompt asked again exact.
            bool on_gpu = m->device != nullptr && n_gpu_layers != 0;
            double scores = 4.0 * cp.n_ubatch * window * std::max(1, llama_model_n_head(m->model));
            if (!on_gpu && n_seq == 1 && accel_devices().empty() && scores <= kPlainAttnMaxScoreBytes)
                cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        }
        if (flags & G4R_LOAD_FLASH_ATTN_ON) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        if (flags & G4R_LOAD_FLASH_ATTN_OFF) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        m->ctx = llama_init_from_model(m->model, cp);
        if (!m->ctx)
            fail(G4R_ERR_MODEL_LOAD, std::string("llama.cpp could not create a context for ") + path +
                                         (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
        m->pooling = static_cast<int32_t>(llama_pooling_type(m->ctx));
        m->flash_attn = cp.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_DISABLED;
        if (m->embedding && m->pooling == LLAMA_POOLING_TYPE_NONE) m->embedding = false;
        if (!m->embedding) {
            m->n_ctx_seq = static_cast<int32_t>(llama_n_ctx_seq(m->ctx));
            m->seqs.resize(static_cast<size_t>(llama_n_seq_max(m->ctx)));
            m->step_batch = llama_batch_init(static_cast<int32_t>(llama_n_batch(m->ctx)), 0, 1);
            m->has_step_batch = true;
        }
        return m.release();
    } catch (const g4r_failure &e) {
        set_error(e.status, e.what());
    } catch (const std::bad_alloc &) {
        set_error(G4R_ERR_INTERNAL, "out of memory while loading the model");
    } catch (const std::exception &e) {
        set_error(G4R_ERR_MODEL_LOAD, std::string("cannot load model: ") + e.what());
    } catch (...) {
        set_error(G4R_ERR_INTERNAL, "unknown error while loading the model");
    }
    return nullptr;
}

void g4r_model_free(g4r_model *model) {
    try {
        delete model;
    } catch (...) {
    }
}

g4r_status g4r_model_info(g4r_model *model, int32_t property, int64_t *value) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!value) fail(G4R_ERR_INVALID_ARGUMENT, "value is NULL");
    switch (property) {
        case G4R_PROP_N_VOCAB: *value = llama_vocab_n_tokens(model->vocab); return G4R_OK;
        case G4R_PROP_N_CTX_TRAIN: *value = llama_model_n_ctx_train(model->model); return G4R_OK;
        case G4R_PROP_N_EMBD: *value = llama_model_n_embd_out(model->model); return G4R_OK;
        case G4R_PROP_ADD_BOS: *value = llama_vocab_get_add_bos(model->vocab); return G4R_OK;
        case G4R_PROP_ADD_EOS: *value = llama_vocab_get_add_eos(model->vocab); return G4R_OK;
        case G4R_PROP_N_PARAMS: *value = static_cast<int64_t>(llama_model_n_params(model->model)); return G4R_OK;
        default: break;
    }
    if (!model->ctx) fail(G4R_ERR_STATE, "the model was loaded vocab-only and has no context");
    // Fixed at load, or atomic: read without waiting for a running evaluation.
    switch (property) {
        case G4R_PROP_N_CTX: *value = model->embedding ? model->embd_window : model->n_ctx_seq; return G4R_OK;
        case G4R_PROP_IS_EMBEDDING: *value = model->embedding ? 1 : 0; return G4R_OK;
        case G4R_PROP_N_DECODED: *value = model->n_decoded.load(); return G4R_OK;
        case G4R_PROP_N_EVALS: *value = model->n_evals.load(); return G4R_OK;
        case G4R_PROP_FLASH_ATTN: *value = model->flash_attn ? 1 : 0; return G4R_OK;
        case G4R_PROP_N_BATCH: *value = llama_n_batch(model->ctx); return G4R_OK;
        case G4R_PROP_N_SEQ_MAX:
            *value = static_cast<int32_t>(llama_n_seq_max(model->ctx)) - (model->embedding ? 1 : 0);
            return G4R_OK;
        case G4R_PROP_POOLING: *value = model->pooling; return G4R_OK;
        default: break;
    }
    std::lock_guard<std::mutex> lock(model->mu);
    switch (property) {
        case G4R_PROP_N_PAST: {
            int64_t n = 0;
            for (const auto &s : model->seqs) n += static_cast<int64_t>(s.past.size());
            *value = n;
            return G4R_OK;
        }
        case G4R_PROP_N_THREADS: *value = model->n_threads; return G4R_OK;
        default: fail(G4R_ERR_INVALID_ARGUMENT, "unknown property " + std::to_string(property));
    }
    G4R_GUARD_END
}

g4r_status g4r_model_device(g4r_model *model, const char **backend, const char **device) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (backend) *backend = model->device ? backend_name_of(model->device) : "cpu";
    if (device) *device = model->device ? ggml_backend_dev_description(model->device) : nullptr;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_meta(g4r_model *model, const char *key, char *buf, size_t buf_size,
                          size_t *n_needed) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!key) fail(G4R_ERR_INVALID_ARGUMENT, "key is NULL");
    int32_t n = llama_model_meta_val_str(model->model, key, buf, buf_size);
    if (n < 0) fail(G4R_ERR_NOT_FOUND, std::string("no metadata key ") + key);
    if (n_needed) *n_needed = static_cast<size_t>(n);
    if (!buf || static_cast<size_t>(n) >= buf_size)
        fail(G4R_ERR_BUFFER_TOO_SMALL, "buffer too small for metadata value");
    return G4R_OK;
    G4R_GUARD_END
}

namespace {

// llama.cpp's JSON-schema converter reports a regex pattern it cannot enforce ("accepting any
// string") with fprintf(stderr). The library never prints: while a conversion runs, the C
// stream stderr points at a memory stream (glibc and macOS let a program assign it), and what
// was written goes to the log callback. Conversions are serialised; Python writes its own
// stderr through the file descriptor, not this FILE*, so it is not captured.
std::mutex g_stderr_mu;

struct StderrCapture {
    std::string &out;
    std::unique_lock<std::mutex> lock{g_stderr_mu};
#if defined(__GLIBC__) || defined(__APPLE__)
    char *data = nullptr;
    size_t size = 0;
    FILE *mem = nullptr;
    FILE *saved = nullptr;
    explicit StderrCapture(std::string &o) : out(o) {
        mem = open_memstream(&data, &size);
        if (mem) {
            saved = stderr;
            stderr = mem;
        }
    }
    ~StderrCapture() {
        if (!mem) return;
        stderr = saved;
        std::fclose(mem);
        if (data) {
            out.assign(data, size);
            std::free(data);
        }
    }
#else
    explicit StderrCapture(std::string &o) : out(o) {}
#endif
    StderrCapture(const StderrCapture &) = delete;
    StderrCapture &operator=(const StderrCapture &) = delete;
};

}  // namespace

g4r_status g4r_json_schema_to_grammar(const char *schema_json, char *buf, size_t buf_size,
                                      size_t *n_needed) {
    G4R_GUARD_BEGIN
    clear_error();
    if (!schema_json) fail(G4R_ERR_INVALID_ARGUMENT, "schema_json is NULL");
    std::string grammar, printed;
    try {
        StderrCapture capture(printed);
        grammar = json_schema_to_grammar(common_json::parse(schema_json), /*force_gbnf=*/true);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {  // parse errors and unsupported constructs
        fail(G4R_ERR_INVALID_ARGUMENT, e.what());
    }
    if (!printed.empty()) {  // e.g. "WARNING: JSON schema conversion was incomplete: pattern ..."
        while (!printed.empty() && printed.back() == '\n') printed.pop_back();
        if (printed.rfind("WARNING: ", 0) == 0) printed.erase(0, 9);
        log_trampoline(GGML_LOG_LEVEL_WARN, (printed + "\n").c_str(), nullptr);
    }
    if (n_needed) *n_needed = grammar.size();
    if (!buf || grammar.size() >= buf_size)
        fail(G4R_ERR_BUFFER_TOO_SMALL, "buffer too small for the grammar");
    std::memcpy(buf, grammar.c_str(), grammar.size() + 1);
    return G4R_OK;
    G4R_GUARD_END
}

namespace {

char *dup_string(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

common_json string_array(const std::vector<std::string> &items) {
    common_json arr = common_json::array();
    for (const auto &i : items) arr.push_back(i);
    return arr;
}

}  // namespace

g4r_status g4r_chat_apply(g4r_model *model, const char *chat_template, const char *request_json,
                          char **result_json) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!request_json || !result_json) fail(G4R_ERR_INVALID_ARGUMENT, "request_json and result_json must not be NULL");
    *result_json = nullptr;
    common_json req;
    common_chat_templates_inputs in;
    try {
        req = common_json::parse(request_json);
        if (!req.is_object()) fail(G4R_ERR_INVALID_ARGUMENT, "the request must be a JSON object");
        in.messages = common_chat_msgs_parse_oaicompat(req.value("messages", common_json::array()));
        if (req.contains("tools") && !req.at("tools").is_null())
            in.tools = common_chat_tools_parse_oaicompat(req.at("tools"));
        in.tool_choice = common_chat_tool_choice_parse_oaicompat(req.value("tool_choice", std::string("auto")));
        in.parallel_tool_calls = req.value("parallel_tool_calls", true);
        in.enable_thinking = req.value("enable_thinking", true);
        in.add_generation_prompt = req.value("add_generation_prompt", true);
        in.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
        if (req.contains("json_schema") && !req.at("json_schema").is_null())
            in.json_schema = req.at("json_schema").dump();
    } catch (const g4r_failure &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_INVALID_ARGUMENT, std::string("invalid chat request: ") + e.what());
    }
    std::string key = chat_template ? chat_template : "";
    common_chat_params out;
    std::map<std::string, bool> caps;
    {
        std::lock_guard<std::mutex> lock(model->chat_mu);
        auto it = model->chat_templates.find(key);
        if (it == model->chat_templates.end()) {
            if (key.empty() && !llama_model_chat_template(model->model, nullptr))
                fail(G4R_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
            common_chat_templates_ptr t;
            try {
                t = common_chat_templates_init(model->model, key);
            } catch (const std::bad_alloc &) {
                throw;
            } catch (const std::exception &e) {
                fail(G4R_ERR_INVALID_ARGUMENT, std::string("llama.cpp cannot read the chat template: ") + e.what());
            }
            if (!t) fail(G4R_ERR_INVALID_ARGUMENT, "llama.cpp cannot read the chat template");
            it = model->chat_templates.emplace(key, std::move(t)).first;
        }
        try {
            caps = common_chat_templates_get_caps(it->second.get());
            out = common_chat_templates_apply(it->second.get(), in);
        } catch (const std::bad_alloc &) {
            throw;
        } catch (const std::exception &e) {
            fail(G4R_ERR_INVALID_ARGUMENT, std::string("llama.cpp cannot apply the chat template: ") + e.what());
        }
    }
    common_json res = common_json::object();
    res["prompt"] = out.prompt;
    res["format"] = std::string(common_chat_format_name(out.format));
    res["format_id"] = static_cast<int64_t>(out.format);
    res["grammar"] = out.grammar;
    res["grammar_lazy"] = out.grammar_lazy;
    res["generation_prompt"] = out.generation_prompt;
    res["supports_thinking"] = out.supports_thinking;
    res["thinking_start_tag"] = out.thinking_start_tag;
    res["thinking_end_tags"] = string_array(out.thinking_end_tags);
    res["preserved_tokens"] = string_array(out.preserved_tokens);
    res["additional_stops"] = string_array(out.additional_stops);
    res["parser"] = out.parser;
    common_json triggers = common_json::array();
    for (const auto &t : out.grammar_triggers) {
        common_json tj = common_json::object();
        tj["type"] = static_cast<int64_t>(t.type);
        tj["value"] = t.value;
        tj["token"] = static_cast<int64_t>(t.token);
        triggers.push_back(tj);
    }
    res["grammar_triggers"] = triggers;
    // The same triggers as llama.cpp's sampler builds them (common/sampling.cpp), ready for
    // g4r_generate_start: regular expressions and token ids.
    common_json patterns = common_json::array();
    common_json tokens = common_json::array();
    for (const auto &t : out.grammar_triggers) {
        switch (t.type) {
            case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: patterns.push_back(regex_escape(t.value)); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: patterns.push_back(t.value); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
                std::string a = t.value.empty() ? std::string("^$")
                    : (t.value.front() != '^' ? "^" : "") + t.value + (t.value.back() != '$' ? "$" : "");
                patterns.push_back(a);
                break;
            }
            case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: tokens.push_back(static_cast<int64_t>(t.token)); break;
        }
    }
    res["trigger_patterns"] = patterns;
    res["trigger_tokens"] = tokens;
    common_json caps_json = common_json::object();
    for (const auto &kv : caps) caps_json[kv.first] = kv.second;
    res["caps"] = caps_json;
    *result_json = dup_string(res.dump());
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_chat_parse(const char *parser_json, const char *text, size_t text_len,
                          int32_t is_partial, char **result_json) {
    G4R_GUARD_BEGIN
    clear_error();
    if (!parser_json || (!text && text_len > 0) || !result_json)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid chat parse arguments");
    *result_json = nullptr;
    common_chat_parser_params params;
    try {
        common_json pj = common_json::parse(parser_json);
        int64_t fmt = pj.value("format_id", static_cast<int64_t>(0));
        if (fmt < 0 || fmt >= COMMON_CHAT_FORMAT_COUNT) fail(G4R_ERR_INVALID_ARGUMENT, "unknown chat format id " + std::to_string(fmt));
        params.format = static_cast<common_chat_format>(fmt);
        params.generation_prompt = pj.value("generation_prompt", std::string());
        params.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
        params.parse_tool_calls = pj.value("parse_tool_calls", true);
        std::string parser = pj.value("parser", std::string());
        if (!parser.empty()) params.parser.load(parser);
    } catch (const g4r_failure &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_INVALID_ARGUMENT, std::string("invalid parser description: ") + e.what());
    }
    common_chat_msg msg;
    try {
        msg = common_chat_parse(std::string(text ? text : "", text_len), is_partial != 0, params);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_GRAMMAR, std::string("the reply does not follow the chat format: ") + e.what());
    }
    common_json res = common_json::object();
    res["content"] = msg.content;
    res["reasoning_content"] = msg.reasoning_content;
    common_json calls = common_json::array();
    for (const auto &c : msg.tool_calls) {
        common_json cj = common_json::object();
        cj["name"] = c.name;
        cj["arguments"] = c.arguments;
        cj["id"] = c.id;
        calls.push_back(cj);
    }
    res["tool_calls"] = calls;
    *result_json = dup_string(res.dump());
    return G4R_OK;
    G4R_GUARD_END
}

void g4r_string_free(char *s) { std::free(s); }

g4r_status g4r_model_chat_template(g4r_model *model, const char **tmpl) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!tmpl) fail(G4R_ERR_INVALID_ARGUMENT, "tmpl is NULL");
    const char *t = llama_model_chat_template(model->model, nullptr);
    if (!t) fail(G4R_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
    *tmpl = t;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_special_token(g4r_model *model, int32_t which, int32_t *token) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!token) fail(G4R_ERR_INVALID_ARGUMENT, "token is NULL");
    const llama_vocab *v = model->vocab;
    switch (which) {
        case G4R_TOKEN_BOS: *token = llama_vocab_bos(v); break;
        case G4R_TOKEN_EOS: *token = llama_vocab_eos(v); break;
        case G4R_TOKEN_EOT: *token = llama_vocab_eot(v); break;
        case G4R_TOKEN_SEP: *token = llama_vocab_sep(v); break;
        case G4R_TOKEN_PAD: *token = llama_vocab_pad(v); break;
        case G4R_TOKEN_MASK: *token = llama_vocab_mask(v); break;
        case G4R_TOKEN_NL: *token = llama_vocab_nl(v); break;
        default: fail(G4R_ERR_INVALID_ARGUMENT, "unknown special token kind " + std::to_string(which));
    }
    if (*token < 0) *token = -1;
    return G4R_OK;
    G4R_GUARD_END
}

int32_t g4r_model_token_is_eog(g4r_model *model, int32_t token) {
    try {
        if (!model || token < 0 || token >= llama_vocab_n_tokens(model->vocab)) return 0;
        return llama_vocab_is_eog(model->vocab, token) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

g4r_status g4r_tokenize(g4r_model *model, const char *text, int32_t text_len, int32_t add_special,
                        int32_t parse_special, int32_t *tokens, int32_t n_tokens_max,
                        int32_t *n_tokens) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_tokens || (!text && text_len > 0) || text_len < 0 || n_tokens_max < 0)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid tokenize arguments");
    int32_t n = llama_tokenize(model->vocab, text ? text : "", text_len, tokens, n_tokens_max,
                               add_special != 0, parse_special != 0);
    if (n == INT32_MIN) fail(G4R_ERR_CONTEXT_OVERFLOW, "text too long to tokenize");
    if (n < 0) {
        *n_tokens = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "token buffer too small");
    }
    *n_tokens = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_token_to_piece(g4r_model *model, int32_t token, int32_t special, char *buf,
                              int32_t buf_size, int32_t *n_bytes) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_bytes || buf_size < 0) fail(G4R_ERR_INVALID_ARGUMENT, "invalid arguments");
    if (token < 0 || token >= llama_vocab_n_tokens(model->vocab))
        fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(token) + " is outside the vocabulary");
    int32_t n = llama_token_to_piece(model->vocab, token, buf, buf_size, 0, special != 0);
    if (n < 0) {
        *n_bytes = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "piece buffer too small");
    }
    *n_bytes = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_detokenize(g4r_model *model, const int32_t *tokens, int32_t n_tokens,
                          int32_t special, char *buf, int32_t buf_size, int32_t *n_bytes) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_bytes || n_tokens < 0 || (!tokens && n_tokens > 0) || buf_size < 0)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid detokenize arguments");
    int32_t nv = llama_vocab_n_tokens(model->vocab);
    for (int32_t i = 0; i < n_tokens; ++i)
        if (tokens[i] < 0 || tokens[i] >= nv)
            fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    int32_t n = llama_detokenize(model->vocab, tokens, n_tokens, buf, buf_size, false, special != 0);
    if (n < 0) {
        *n_bytes = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "text buffer too small");
    }
    *n_bytes = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_set_threads(g4r_model *model, int32_t n_threads) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (n_threads <= 0) fail(G4R_ERR_INVALID_ARGUMENT, "n_threads must be > 0, got " + std::to_string(n_threads));
    idle_lock lock(model);
    model->n_threads = n_threads;
    llama_set_n_threads(model->ctx, n_threads, n_threads);
    return G4R_OK;
    G4R_GUARD_END
}

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

g4r_status g4r_generate_start(g4r_model *model, int32_t seq, float temp, int32_t top_k, float top_p,
                              float min_p, float repeat_penalty, int32_t repeat_last_n, uint32_t seed,
                              const char *grammar, const char *const *trigger_patterns,
                              int32_t n_patterns, const int32_t *trigger_tokens, int32_t n_tokens,
                              int32_t n_predict, int32_t n_logprobs) {
    G4R_GUARD_BEGIN
    clear_error();
    require_generator(model);
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail(G4R_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1], got " + std::to_string(top_p));
    if (!(min_p >= 0.0f && min_p <= 1.0f)) fail(G4R_ERR_INVALID_ARGUMENT, "min_p must be in [0, 1], got " + std::to_string(min_p));
    if (!(repeat_penalty > 0.0f)) fail(G4R_ERR_INVALID_ARGUMENT, "repeat_penalty must be > 0, got " + std::to_string(repeat_penalty));
    if (repeat_last_n < -1) fail(G4R_ERR_INVALID_ARGUMENT, "repeat_last_n must be >= -1, got " + std::to_string(repeat_last_n));
    if (temp != temp) fail(G4R_ERR_INVALID_ARGUMENT, "temp is NaN");
    if (n_predict < -1 || n_predict == 0) fail(G4R_ERR_INVALID_ARGUMENT, "n_predict must be -1 or >= 1, got " + std::to_string(n_predict));
    if (n_logprobs < -1 || n_logprobs > G4R_MAX_TOP_LOGPROBS)
        fail(G4R_ERR_INVALID_ARGUMENT, "n_logprobs must be in [-1, " + std::to_string(G4R_MAX_TOP_LOGPROBS) +
                                           "], got " + std::to_string(n_logprobs));
    if (n_patterns < 0 || n_tokens < 0 || (n_patterns > 0 && !trigger_patterns) || (n_tokens > 0 && !trigger_tokens))
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid grammar triggers");
    for (int32_t i = 0; i < n_patterns; ++i)
        if (!trigger_patterns[i]) fail(G4R_ERR_INVALID_ARGUMENT, "trigger pattern " + std::to_string(i) + " is NULL");
    if ((n_patterns > 0 || n_tokens > 0) && !(grammar && grammar[0]))
        fail(G4R_ERR_INVALID_ARGUMENT, "grammar triggers need a grammar");
    idle_lock lock(model);
    g4r_seq &s = seq_of(model, seq);
    model->cancel.store(false);
    if (s.past.empty() && s.todo.empty()) fail(G4R_ERR_STATE, "nothing has been ingested: call g4r_model_ingest first");
    end_generation(s);

    int32_t last_n = repeat_last_n == -1 ? model->n_ctx_seq : repeat_last_n;
    auto sp = llama_sampler_chain_default_params();
    sp.no_perf = true;
    llama_sampler *chain = llama_sampler_chain_init(sp);
    struct chain_guard {
        llama_sampler *&c;
        ~chain_guard() { if (c) llama_sampler_free(c); }
    } guard{chain};
    bool has_grammar = grammar && grammar[0];
    if (has_grammar) {
        t_last_log_error.clear();
        std::string printed;  // llama.cpp's grammar parser reports errors with fprintf(stderr)
        llama_sampler *g = nullptr;
        {
            StderrCapture capture(printed);
            if (n_patterns > 0 || n_tokens > 0) {
                std::vector<const char *> pats(trigger_patterns, trigger_patterns + n_patterns);
                g = llama_sampler_init_grammar_lazy_patterns(
                    model->vocab, grammar, "root", pats.data(), pats.size(),
                    reinterpret_cast<const llama_token *>(trigger_tokens), static_cast<size_t>(n_tokens));
            } else {
                g = llama_sampler_init_grammar(model->vocab, grammar, "root");
            }
        }
        while (!printed.empty() && (printed.back() == '\n' || printed.back() == ' ')) printed.pop_back();
        if (!printed.empty()) log_trampoline(GGML_LOG_LEVEL_WARN, (printed + "\n").c_str(), nullptr);
        if (!g) {
            std::string why = !printed.empty() ? printed.substr(0, printed.find('\n')) : t_last_log_error;
            fail(G4R_ERR_GRAMMAR, "cannot parse the grammar" + (why.empty() ? std::string() : ": " + why));
        }
        llama_sampler_chain_add(chain, g);
    }
    if (last_n > 0 && repeat_penalty != 1.0f) {
        llama_sampler *pen = repeat_penalty_init(last_n, repeat_penalty);
        std::vector<llama_token> all(s.past);
        all.insert(all.end(), s.todo.begin(), s.todo.end());
        size_t from = all.size() > static_cast<size_t>(last_n) ? all.size() - last_n : 0;
        for (size_t i = from; i < all.size(); ++i) llama_sampler_accept(pen, all[i]);
        llama_sampler_chain_add(chain, pen);
    }
    if (temp <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    } else {
        if (top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(top_k));
        if (top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(top_p, 1));
        if (min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(min_p, 1));
        llama_sampler_chain_add(chain, llama_sampler_init_temp(temp));
        llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
    }
    s.sampler = chain;
    chain = nullptr;
    s.has_grammar = has_grammar;
    s.budget = n_predict;
    s.n_logprobs = n_logprobs;
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

g4r_status g4r_generate_logprobs(g4r_model *model, int32_t seq, int32_t n_top, float *logprob,
                                 int32_t *top_tokens, float *top_logprobs, int32_t *n_written) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (n_top < 0 || n_top > G4R_MAX_TOP_LOGPROBS)
        fail(G4R_ERR_INVALID_ARGUMENT, "n_top must be in [0, " + std::to_string(G4R_MAX_TOP_LOGPROBS) +
                                           "], got " + std::to_string(n_top));
    if (!logprob || !n_written || (n_top > 0 && (!top_tokens || !top_logprobs)))
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid logprobs arguments");
    std::lock_guard<std::mutex> lock(model->mu);
    g4r_seq &s = seq_of(model, seq);
    if (!s.sampler || !s.has_last)
        fail(G4R_ERR_STATE, "no token to report: call g4r_generate_next first (it must have produced one)");
    if (s.n_logprobs < n_top)
        fail(G4R_ERR_STATE, "this generation records " + std::to_string(s.n_logprobs) +
                                " alternatives; start it with n_logprobs >= " + std::to_string(n_top));
    *logprob = s.last.logprob;
    int32_t k = std::min(n_top, s.last.n_top);
    for (int32_t i = 0; i < k; ++i) {
        top_tokens[i] = s.last.top_ids[i];
        top_logprobs[i] = s.last.top_lps[i];
    }
    *n_written = k;
    return G4R_OK;
    G4R_GUARD_END
}

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

void g4r_model_cancel(g4r_model *model) {
    if (model) model->cancel.store(true);
}

}  // extern "C"
