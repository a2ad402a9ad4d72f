// g4r-impl.h - what the implementation files of g4r.h share: the handle and sequence structs,
// the status and error helpers, and the functions one file defines for another.
//
// Files (one per object or concern, as llama.cpp splits its src/):
//   g4r-status.cpp    status, last error, the log callback, ABI version
//   g4r-backend.cpp   ggml backends and devices, system info
//   g4r-model.cpp     loading a model and its context, properties, metadata, threads
//   g4r-vocab.cpp     tokenize, detokenize, pieces, special tokens
//   g4r-chat.cpp      chat formats (llama.cpp's common/chat), JSON schema to grammar
//   g4r-sampling.cpp  sampler parameters (their one check), the sampler chain, the repetition
//                     penalty sampler, log-probabilities
//   g4r-sched.cpp     the scheduler's policy, pure (g4r-sched.h)
//   g4r-scheduler.cpp the batching scheduler (step) and the sequence API: ingest, reset,
//                     generate start/next/finish, cancel
//   g4r-score.cpp     log-likelihood of a continuation
//   g4r-embed.cpp     pooled embeddings
//   g4r-encoder.cpp   the BERT encoder graph of our own (g4r-encoder.h)
//   g4r-kernels.cpp   its custom CPU operations: attention per text, GELU, products
//                     (g4r-kernels.h); the plain C++ kernels and the choice of a set
//   g4r-kernels-x86.cpp  their AVX2 and AVX-512 kernels (g4r-kernel-set.h)
//   cpu.cpp           the CPU's instruction-set flags (cpu_flags.h)
//
// Only these files talk to llama.cpp. Every exported body is wrapped in G4R_GUARD_BEGIN/END
// (or its own try/catch) so that no C++ exception crosses the ABI, and every failure sets the
// thread-local status and message.
#ifndef G4R_IMPL_H
#define G4R_IMPL_H

#include "g4r.h"
#include "g4r-encoder.h"
#include "g4r-sched.h"

#include "ggml-backend.h"
#include "llama.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace g4r {

// An embedding context holds this many windows of the model, so that many short texts are
// evaluated together (one llama_decode) while a single sequence still fits one ubatch.
constexpr int32_t kEmbedWindowsPerBatch = 1;
// Sequences per embedding context; one is kept for the filler sequence (g4r-embed.cpp).
constexpr int32_t kEmbedSeqMax = 64;
// llama.cpp's graph (G4R_LOAD_LLAMA_ENCODER, or a model g4r's encoder does not cover): ggml's
// CPU flash attention takes its tiled path (F32 accumulation, whole all-masked tiles
// skipped) only for ubatches of at least GGML_FA_TILE_Q (64) tokens; smaller ones go through a
// path that accumulates V in F16. An embedding call pads every decode to this many tokens with a
// throw-away sequence so that a text's vector does not depend on how many other texts share
// its batch (measured: 1.2e-4 apart without the padding). g4r's encoder needs no filler.
constexpr int32_t kEmbedMinDecodeTokens = 64;
// A CPU generation context uses plain attention while its score matrix (n_ubatch x n_ctx x
// n_head floats) is at most this many bytes; see g4r_model_load in g4r.h.
constexpr double kPlainAttnMaxScoreBytes = 128.0 * 1024 * 1024;
// Tokens per evaluation of g4r's encoder (G4R_PROP_N_BATCH; a longer text goes alone). Its
// attention is per text, so the size only amortises ggml's per-operation thread handoffs:
// 256, 512 and 1,024 gave the same short-text throughput within noise (2 Zen 3 cores).
constexpr int32_t kEncoderEvalTokens = 512;
// Parallel sequences of one generation context (llama.cpp allows 256).
constexpr int32_t kMaxSeq = 64;

// ---- status and errors (g4r-status.cpp) ----------------------------------------------------

// The last error-level line llama.cpp logged on this thread: it usually says why a load failed.
extern thread_local std::string t_last_log_error;

struct g4r_failure : std::runtime_error {
    g4r_status status;
    g4r_failure(g4r_status s, const std::string &msg) : std::runtime_error(msg), status(s) {}
};

[[noreturn]] void fail(g4r_status s, const std::string &msg);
g4r_status set_error(g4r_status s, const std::string &msg);
void clear_error();
// The logger installed into llama.cpp and ggml: remembers error lines, calls the callback.
void log_trampoline(enum ggml_log_level level, const char *text, void *user_data);

// ---- backends (g4r-backend.cpp) --------------------------------------------------------------

// Load ggml's backend modules and initialise llama.cpp, once per process.
void ensure_backend();
// The folder this library was loaded from ("" if unknown): ggml's backend modules lie beside it.
std::string own_directory();
std::string lower(std::string s);
std::vector<ggml_backend_dev_t> gpu_devices();
// Accelerator backends loaded (ggml's BLAS backend in a G4R_BLAS=mkl build).
std::vector<ggml_backend_dev_t> accel_devices();
// The device's backend name in lower case, static storage.
const char *backend_name_of(ggml_backend_dev_t dev);

// ---- chat (g4r-chat.cpp) -------------------------------------------------------------------

// A model's compiled chat templates (llama.cpp common/chat), built on first use.
struct chat_cache;
struct chat_cache_deleter {
    void operator()(chat_cache *c) const;
};

// While alive, the C stream stderr points at a memory stream whose text lands in `out`:
// llama.cpp's grammar parser and JSON-schema converter report with fprintf(stderr), and the
// library never prints. Instances are serialised (one process-wide mutex).
struct StderrCapture {
    explicit StderrCapture(std::string &out);
    ~StderrCapture();
    StderrCapture(const StderrCapture &) = delete;
    StderrCapture &operator=(const StderrCapture &) = delete;

  private:
    std::string &out_;
    std::unique_lock<std::mutex> lock_;
    char *data_ = nullptr;
    size_t size_ = 0;
    FILE *mem_ = nullptr;
    FILE *saved_ = nullptr;
};

// One produced token waiting to be taken by g4r_generate_next (or the reason there is none).
struct produced {
    llama_token token = -1;
    int32_t reason = G4R_CONTINUE;
    float logprob = 0.0f;  // valid when the sequence records log-probabilities
    int32_t n_top = 0;
    llama_token top_ids[G4R_MAX_TOP_LOGPROBS];
    float top_lps[G4R_MAX_TOP_LOGPROBS];
};

}  // namespace g4r

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
    std::deque<g4r::produced> ready; // produced, not yet taken by g4r_generate_next
    g4r::produced last;              // the token g4r_generate_next returned last
    bool has_last = false;
    g4r_status error = G4R_OK;       // a failure of this sequence alone, reported once
    std::string error_msg;

    ~g4r_seq() {
        if (sampler) llama_sampler_free(sampler);
    }
};

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
    g4r::encoder_ptr encoder; // embedding models: g4r's BERT graph, where it covers the model
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
    // generation: the policy's view of the sequences and its plan, reused by every step
    std::vector<g4r::sched_seq> sched_views;
    g4r::sched_plan plan;

    ggml_backend_dev_t device = nullptr;

    // llama.cpp chat-template state (common/chat.h), per template source ("" = the GGUF's),
    // built on first use; guarded by chat_mu so chat formatting never waits for a decode.
    std::mutex chat_mu;
    std::unique_ptr<g4r::chat_cache, g4r::chat_cache_deleter> chat;

    ~g4r_model() {
        seqs.clear();
        if (has_step_batch) llama_batch_free(step_batch);
        if (ctx) llama_free(ctx);
        if (model) llama_model_free(model);
    }
};

namespace g4r {

// ---- handles (g4r-model.cpp) ---------------------------------------------------------------

void require_model(g4r_model *m);  // m is not NULL
// A GGUF metadata value of the model as text ("" when absent), of any length.
std::string meta_str(const llama_model *model, const std::string &key);
void require_ctx(g4r_model *m);    // ... and has a context (not vocab-only)

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

// A llama_batch of one sequence id per token, freed on scope exit.
struct owned_batch {
    llama_batch batch;
    explicit owned_batch(int32_t n_tokens) : batch(llama_batch_init(n_tokens, 0, 1)) {}
    ~owned_batch() { llama_batch_free(batch); }
    owned_batch(const owned_batch &) = delete;
    owned_batch &operator=(const owned_batch &) = delete;
};

// ---- sampling (g4r-sampling.cpp) -----------------------------------------------------------

// The one check of a g4r_sampler_params: G4R_ERR_INVALID_ARGUMENT naming the first bad field
// and its value (the message set with set_error), else G4R_OK.
g4r_status check_sampler_params(const g4r_sampler_params *params);

// Repetition penalty with the arithmetic of llama.cpp's penalties sampler (see g4r-sampling.cpp):
// a sampler over the last `last_n` (> 0) accepted tokens.
llama_sampler *repeat_penalty_init(int32_t last_n, float penalty);

// The repetition penalty that `p` asks for (nullptr when disabled: repeat_penalty 1 or
// repeat_last_n 0), over the last repeat_last_n tokens, or n_ctx_seq for -1, having accepted
// the end of the sequence's tokens so far, `past` then `todo` (the prompt counts, as in
// llama.cpp's server).
llama_sampler *make_repeat_penalty(const g4r_sampler_params &p, int32_t n_ctx_seq,
                                   const std::vector<llama_token> &past,
                                   const std::vector<llama_token> &todo);

// The sampler chain of a checked `p` for a sequence whose tokens so far are `past` then
// `todo`: grammar (lazy with triggers), repetition penalty, then greedy, or top-k, top-p,
// min-p, temperature and a seeded draw. Throws g4r_failure (G4R_ERR_GRAMMAR) for a bad grammar.
llama_sampler *make_sampler_chain(const llama_vocab *vocab, const g4r_sampler_params &p, int32_t n_ctx_seq,
                                  const std::vector<llama_token> &past, const std::vector<llama_token> &todo);

// log(sum(exp(logits))) over the vocabulary, computed stably around the maximum.
double log_sum_exp(const float *logits, int32_t n_vocab);
// p's log-probability and its n most likely alternatives from the raw logits.
void record_logprobs(produced &p, const float *logits, int32_t nv, int32_t n_top);

// ---- the scheduler and sequences (g4r-scheduler.cpp) ---------------------------------------

[[noreturn]] void fail_decode(int32_t rc, int32_t n_tokens);
g4r_seq &seq_of(g4r_model *m, int32_t seq);
void require_generator(g4r_model *m);
// Every token id lies in the vocabulary.
void check_tokens(g4r_model *m, const int32_t *tokens, int32_t n);
// Keep the first `keep` tokens of sequence sid in the cache and drop the rest (and any tokens
// still to evaluate); returns how many were kept.
size_t truncate_seq(g4r_model *m, int32_t sid, size_t keep);
// End the sequence's generation: free its sampler and read-ahead.
void end_generation(g4r_seq &s);

}  // namespace g4r

#define G4R_GUARD_BEGIN try {
#define G4R_GUARD_END                                                                       \
    }                                                                                       \
    catch (const g4r::g4r_failure &e) {                                                     \
        return g4r::set_error(e.status, e.what());                                          \
    }                                                                                       \
    catch (const std::bad_alloc &) {                                                        \
        return g4r::set_error(G4R_ERR_INTERNAL, "out of memory");                           \
    }                                                                                       \
    catch (const std::exception &e) {                                                       \
        return g4r::set_error(G4R_ERR_INTERNAL, std::string("internal error: ") + e.what()); \
    }                                                                                       \
    catch (...) {                                                                           \
        return g4r::set_error(G4R_ERR_INTERNAL, "unknown internal error");                  \
    }

#endif  // G4R_IMPL_H
