// g4r-sched.h - the policy of the batching scheduler, as pure code (no llama.cpp, no model).
//
// step() in g4r-scheduler.cpp runs one llama_decode for all sequences of a model; which
// sequences contribute which tokens to it is decided here, from a snapshot of each sequence
// (sched_seq), so that native/tests/test_g4r.cpp can drive the very same decisions without a
// model. The rules (g4r.h, "Parallel sequences"):
// - Fairness: every generating sequence that wants a token and has one produced but not yet
//   evaluated contributes exactly that one token to each step (in sequence order), before any
//   prompt token. One whose window is full stops instead (G4R_STOP_LENGTH).
// - Read-ahead: a sequence wants a token only while fewer than kReadAhead produced tokens wait
//   for its consumer, so an unconsumed stream costs at most kReadAhead evaluations and never
//   holds the others back.
// - Prompts: after those tokens, chunks of the prompts still to evaluate in arrival order,
//   each at most its sequence's chunk (ingest's n_batch), all of them together at most the
//   batch size, or the ubatch size while any sequence generates: a long prompt is ingested a
//   ubatch per step between the running sequences' tokens, and never starves them. Only the
//   last chunk of a step may be cut short by that budget; a prompt that is not finished in a
//   step keeps its place in the queue (the oldest prompt is served first in the next step).
// - A sequence whose next token follows saved prompt logits samples it without evaluation,
//   before the step's batch is planned, and so does one whose prompt the step finished.
#ifndef G4R_SCHED_H
#define G4R_SCHED_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace g4r {

// Tokens a sequence may hold ahead of its consumer (see above).
constexpr size_t kReadAhead = 4;

// What the policy reads of one sequence: a snapshot of g4r_seq (g4r-impl.h).
struct sched_seq {
    bool generating = false;    // it has a sampler, is not exhausted and has no error
    size_t n_ready = 0;         // produced tokens (or a stop) its consumer has not taken
    bool has_pending = false;   // a produced token not yet evaluated
    bool logits_saved = false;  // its next token follows saved prompt logits
    size_t n_past = 0;          // tokens held in its cache
    size_t n_todo = 0;          // ingested tokens still to evaluate
    int32_t chunk = 512;        // prompt tokens it contributes per step at most
    uint64_t order = 0;         // arrival order of its latest prompt
};

// The sizes a step works within.
struct sched_limits {
    int32_t n_batch = 0;    // tokens one llama_decode takes
    int32_t n_ubatch = 0;   // prompt tokens per step while any sequence generates
    int32_t n_ctx_seq = 0;  // tokens one sequence may hold
};

// One contribution to a step's batch: tokens [first, first + n) of the batch belong to
// sequence `seq`: its pending token (prompt false, n 1), or the next n tokens of its prompt.
// `logits`: the contribution's last token outputs logits (a token row always; a prompt chunk
// when it finishes the prompt).
struct sched_row {
    int32_t seq;
    int32_t first;
    int32_t n;
    bool prompt;
    bool logits;
};

struct sched_plan {
    std::vector<int32_t> window_full;  // generating sequences to stop: their window is full
    std::vector<sched_row> rows;       // token rows (sequence order), then prompt chunks (arrival order)
    int32_t n_tokens = 0;              // tokens of the batch: sum of rows' n
};

// May the sequence produce another token now? (read-ahead bound)
bool sched_wants_token(const sched_seq &s);

// Does the sequence sample its next token from saved prompt logits, with no evaluation?
bool sched_samples_saved(const sched_seq &s);

// The batch of the next step. `plan` is overwritten (its vectors' storage is reused).
void sched_plan_step(const std::vector<sched_seq> &seqs, const sched_limits &limits, sched_plan &plan);

}  // namespace g4r

#endif  // G4R_SCHED_H
