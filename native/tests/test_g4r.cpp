// test_g4r.cpp - C++ tests of what the Python tests cannot reach, built with G4R_BUILD_TESTS=ON
// and run by tests/native/test_cpp.py. No model weights, no third-party test framework:
//   bin/test_g4r            run every test; exit status 0 when all pass
//   bin/test_g4r NAME...    run the tests whose names contain NAME
//   bin/test_g4r --layout   print the layout of g4r_sampler_params (offsets, size) as JSON,
//                           which the Python test compares with its ctypes Structure
//
// - The repetition penalty (g4r-sampling.cpp) against llama.cpp's own penalties sampler
//   (llama_sampler_init_penalties) on the same logits.
// - The one check of g4r_sampler_params and its defaults.
// - The scheduler's policy (g4r-sched.h) driven without a model: fairness, prompt chunking,
//   arrival order, the read-ahead bound, a full window.
#include "g4r-impl.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

// ---- a tiny harness -------------------------------------------------------------------------

int g_failures = 0;
int g_checks = 0;
const char *g_test = "";

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        ++g_checks;                                                               \
        if (!(cond)) {                                                            \
            ++g_failures;                                                         \
            std::fprintf(stderr, "FAIL %s (%s:%d): %s: ", g_test, __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                    \
            std::fprintf(stderr, "\n");                                           \
            if (g_failures > 50) {                                                \
                std::printf("FAIL %s: too many failures, stopped\n", g_test);    \
                std::exit(1);                                                     \
            }                                                                     \
        }                                                                         \
    } while (0)

struct test_case {
    const char *name;
    void (*fn)();
};

std::vector<test_case> &registry() {
    static std::vector<test_case> tests;
    return tests;
}

struct registrar {
    registrar(const char *name, void (*fn)()) { registry().push_back({name, fn}); }
};

#define TEST(name)                                  \
    void name();                                    \
    registrar name##_registrar(#name, name);        \
    void name()

// ---- the repetition penalty against llama.cpp's ----------------------------------------------
//
// Ours applies llama.cpp's arithmetic for the repeat penalty (l * p for l <= 0, else l / p) to
// the tokens among the last last_n accepted, as llama_sampler_init_penalties(n_vocab, last_n,
// p, 0, 0) does. Deliberate differences, tested as relations:
// - repeat_last_n -1 means the whole window (n_ctx_seq); llama.cpp's sampler clamps -1 to 0
//   (disabled), so ours with -1 is compared with llama.cpp's with last_n = n_ctx_seq.
// - Ours has no frequency or presence penalty (both 0 in llama.cpp's here).
// - Ours is absent from the chain (nullptr) when disabled (last_n 0 or penalty 1), where
//   llama.cpp's leaves the logits unchanged: the same result.
// - The prompt counts: make_repeat_penalty accepts the tail of the sequence's tokens, as
//   llama.cpp's server accepts the prompt's tokens into its sampler; here both get the same
//   history.

std::vector<llama_token_data> candidates(const std::vector<float> &logits) {
    std::vector<llama_token_data> out(logits.size());
    for (size_t i = 0; i < logits.size(); ++i)
        out[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
    return out;
}

// Apply `smpl` (nullptr: nothing) to a copy of `cand`; the result, in the same order.
std::vector<llama_token_data> applied(llama_sampler *smpl, std::vector<llama_token_data> cand) {
    if (smpl) {
        llama_token_data_array arr{cand.data(), cand.size(), -1, false};
        llama_sampler_apply(smpl, &arr);
    }
    return cand;
}

// Compare two candidate arrays element by element; returns how many logits `ref` changed.
int compare(const std::vector<llama_token_data> &before, const std::vector<llama_token_data> &ours,
            const std::vector<llama_token_data> &ref, const std::string &what) {
    int changed = 0;
    CHECK(ours.size() == ref.size(), "%s: sizes %zu vs %zu", what.c_str(), ours.size(), ref.size());
    for (size_t i = 0; i < std::min(ours.size(), ref.size()); ++i) {
        CHECK(ours[i].id == ref[i].id, "%s: position %zu holds %d vs %d", what.c_str(), i, ours[i].id, ref[i].id);
        float d = std::fabs(ours[i].logit - ref[i].logit);
        if (!(d <= 1e-6f)) {
            CHECK(d <= 1e-6f, "%s: token %d: ours %.9g, llama.cpp %.9g", what.c_str(), ref[i].id,
                  ours[i].logit, ref[i].logit);
            return changed;
        }
        if (ref[i].logit != before[i].logit) ++changed;
    }
    return changed;
}

TEST(penalty_matches_llama_cpp) {
    std::mt19937 rng(20261206);
    const int32_t n_ctx_seq = 512;
    struct setting { float penalty; int32_t last_n; };
    const setting settings[] = {{1.18f, 64}, {1.0f, 64}, {1.18f, 0}, {1.18f, -1}, {0.5f, 16},
                                {2.0f, 1},   {1.3f, 1000}, {1.05f, 3}, {1.0f, -1}, {3.0f, 200}};
    const int32_t vocab_sizes[] = {1, 7, 100, 4096, 49152};
    int64_t changed_total = 0;
    for (int32_t nv : vocab_sizes) {
        for (const setting &st : settings) {
            for (int trial = 0; trial < 3; ++trial) {
                // A history with repeats: most tokens from a small range, some from anywhere.
                std::uniform_int_distribution<int32_t> len_d(0, 300);
                std::uniform_int_distribution<int32_t> small_d(0, std::min(nv, 40) - 1);
                std::uniform_int_distribution<int32_t> any_d(0, nv - 1);
                std::bernoulli_distribution small_b(0.8);
                auto draw = [&] { return small_b(rng) ? small_d(rng) : any_d(rng); };
                std::vector<llama_token> history(static_cast<size_t>(len_d(rng)));
                for (auto &t : history) t = draw();
                std::vector<llama_token> prompt_todo;  // split the history: past, then todo
                if (!history.empty() && trial == 1) {
                    size_t cut = history.size() / 2;
                    prompt_todo.assign(history.begin() + cut, history.end());
                    history.resize(cut);
                }

                g4r_sampler_params p;
                g4r_sampler_default_params(&p);
                p.repeat_penalty = st.penalty;
                p.repeat_last_n = st.last_n;
                llama_sampler *ours = g4r::make_repeat_penalty(p, n_ctx_seq, history, prompt_todo);
                bool disabled = st.last_n == 0 || st.penalty == 1.0f;
                CHECK((ours == nullptr) == disabled, "penalty %g last_n %d: sampler %p", st.penalty, st.last_n,
                      static_cast<void *>(ours));
                int32_t ref_last_n = st.last_n == -1 ? n_ctx_seq : st.last_n;
                llama_sampler *ref = llama_sampler_init_penalties(nv, ref_last_n, st.penalty, 0.0f, 0.0f);
                for (llama_token t : history) llama_sampler_accept(ref, t);
                for (llama_token t : prompt_todo) llama_sampler_accept(ref, t);

                std::normal_distribution<float> logit_d(0.0f, 3.0f);
                for (int gen = 0; gen < 12; ++gen) {
                    std::vector<float> logits(static_cast<size_t>(nv));
                    for (auto &l : logits) l = logit_d(rng);
                    logits[0] = 0.0f;  // the l <= 0 branch at exactly 0
                    std::vector<llama_token_data> in_order = candidates(logits);
                    // The same candidates shuffled, and a shuffled subset (as after top-k):
                    // ours then leaves its in-order path.
                    std::vector<llama_token_data> shuffled = in_order;
                    std::shuffle(shuffled.begin(), shuffled.end(), rng);
                    std::vector<llama_token_data> subset(shuffled.begin(), shuffled.begin() + (shuffled.size() + 1) / 2);
                    char what[160];
                    for (const auto *cand : {&in_order, &shuffled, &subset}) {
                        std::snprintf(what, sizeof what, "nv %d penalty %g last_n %d trial %d step %d %s", nv,
                                      st.penalty, st.last_n, trial, gen,
                                      cand == &in_order ? "in order" : cand == &shuffled ? "shuffled" : "subset");
                        changed_total += compare(*cand, applied(ours, *cand), applied(ref, *cand), what);
                    }
                    if (ours && gen == 6) {  // a clone carries the window
                        llama_sampler *copy = llama_sampler_clone(ours);
                        compare(in_order, applied(copy, in_order), applied(ref, in_order), "clone");
                        llama_sampler_free(copy);
                    }
                    llama_token next = draw();
                    if (ours) llama_sampler_accept(ours, next);
                    llama_sampler_accept(ref, next);
                }
                if (ours) {  // after a reset both forget every token
                    llama_sampler_reset(ours);
                    llama_sampler_reset(ref);
                    std::vector<float> logits(static_cast<size_t>(nv), 1.0f);
                    auto cand = candidates(logits);
                    compare(cand, applied(ours, cand), applied(ref, cand), "after reset");
                    llama_sampler_free(ours);
                }
                llama_sampler_free(ref);
            }
        }
    }
    CHECK(changed_total > 10000, "the penalty changed only %lld logits: the comparison is vacuous",
          static_cast<long long>(changed_total));
}

TEST(penalty_in_a_sampler_chain_keeps_llama_cpps_greedy_choice) {
    // The chain make_sampler_chain builds for greedy decoding (no grammar: needs no vocabulary)
    // picks what llama.cpp's penalties + greedy pick.
    std::mt19937 rng(7);
    const int32_t nv = 1000;
    std::vector<llama_token> history;
    for (int i = 0; i < 80; ++i) history.push_back(static_cast<llama_token>(rng() % 30));
    g4r_sampler_params p;
    g4r_sampler_default_params(&p);
    p.temp = 0.0f;
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 32;
    llama_sampler *chain = g4r::make_sampler_chain(nullptr, p, 4096, history, {});
    llama_sampler *ref = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(ref, llama_sampler_init_penalties(nv, 32, 1.5f, 0.0f, 0.0f));
    llama_sampler_chain_add(ref, llama_sampler_init_greedy());
    for (llama_token t : history) llama_sampler_accept(ref, t);
    std::normal_distribution<float> logit_d(0.0f, 1.0f);
    for (int step = 0; step < 50; ++step) {
        std::vector<float> logits(nv);
        for (auto &l : logits) l = logit_d(rng);
        for (int i = 0; i < 30; ++i) logits[i] += 2.0f;  // the repeated tokens lead before the penalty
        auto a = candidates(logits), b = candidates(logits);
        llama_token_data_array aa{a.data(), a.size(), -1, false}, bb{b.data(), b.size(), -1, false};
        llama_sampler_apply(chain, &aa);
        llama_sampler_apply(ref, &bb);
        CHECK(aa.selected >= 0 && bb.selected >= 0, "step %d: nothing selected", step);
        llama_token ta = aa.data[aa.selected].id, tb = bb.data[bb.selected].id;
        CHECK(ta == tb, "step %d: ours picks %d, llama.cpp %d", step, ta, tb);
        llama_sampler_accept(chain, ta);
        llama_sampler_accept(ref, tb);
    }
    llama_sampler_free(chain);
    llama_sampler_free(ref);
}

// ---- the one check of g4r_sampler_params -----------------------------------------------------

g4r_sampler_params defaults() {
    g4r_sampler_params p;
    std::memset(&p, 0xAB, sizeof p);  // every field is set by g4r_sampler_default_params
    g4r_sampler_default_params(&p);
    return p;
}

void expect_bad(const g4r_sampler_params &p, const char *field, const char *value) {
    g4r_status st = g4r::check_sampler_params(&p);
    std::string msg = g4r_last_error();
    CHECK(st == G4R_ERR_INVALID_ARGUMENT, "%s = %s: status %d", field, value, st);
    CHECK(msg.rfind(std::string(field) + " must be", 0) == 0 && msg.find(value) != std::string::npos,
          "%s = %s: message '%s' names neither", field, value, msg.c_str());
}

void expect_ok(const g4r_sampler_params &p, const char *what) {
    g4r_status st = g4r::check_sampler_params(&p);
    CHECK(st == G4R_OK, "%s: status %d: %s", what, st, g4r_last_error());
}

TEST(sampler_defaults_are_documented_and_valid) {
    g4r_sampler_params p = defaults();
    CHECK(p.temp == 0.7f && p.top_k == 40 && p.top_p == 0.4f && p.min_p == 0.0f, "sampling defaults");
    CHECK(p.repeat_penalty == 1.18f && p.repeat_last_n == 64, "penalty defaults");
    CHECK(p.seed == G4R_DEFAULT_SEED && p.seed == LLAMA_DEFAULT_SEED, "seed %u", p.seed);
    CHECK(!p.grammar && !p.trigger_patterns && p.n_trigger_patterns == 0 && !p.trigger_tokens &&
              p.n_trigger_tokens == 0, "no grammar by default");
    CHECK(p.n_predict == -1 && p.n_logprobs == -1, "n_predict %d n_logprobs %d", p.n_predict, p.n_logprobs);
    expect_ok(p, "defaults");
    g4r_sampler_default_params(nullptr);  // ignored
}

TEST(sampler_params_are_checked_field_by_field) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(g4r::check_sampler_params(nullptr) == G4R_ERR_INVALID_ARGUMENT, "NULL params");
    g4r_sampler_params p;
    // Each field just outside its range, then at its edges.
    p = defaults(); p.temp = -0.5f; expect_bad(p, "temp", "-0.5");
    p = defaults(); p.temp = nan; expect_bad(p, "temp", "nan");
    p = defaults(); p.temp = inf; expect_bad(p, "temp", "inf");
    p = defaults(); p.temp = 0.0f; expect_ok(p, "temp 0");
    p = defaults(); p.top_k = -1; expect_bad(p, "top_k", "-1");
    p = defaults(); p.top_k = 0; expect_ok(p, "top_k 0");
    p = defaults(); p.top_p = 0.0f; expect_bad(p, "top_p", "0");
    p = defaults(); p.top_p = 1.5f; expect_bad(p, "top_p", "1.5");
    p = defaults(); p.top_p = nan; expect_bad(p, "top_p", "nan");
    p = defaults(); p.top_p = 1.0f; expect_ok(p, "top_p 1");
    p = defaults(); p.min_p = -0.25f; expect_bad(p, "min_p", "-0.25");
    p = defaults(); p.min_p = 2.0f; expect_bad(p, "min_p", "2");
    p = defaults(); p.min_p = 1.0f; expect_ok(p, "min_p 1");
    p = defaults(); p.repeat_penalty = 0.0f; expect_bad(p, "repeat_penalty", "0");
    p = defaults(); p.repeat_penalty = -inf; expect_bad(p, "repeat_penalty", "-inf");
    p = defaults(); p.repeat_penalty = 1.0f; expect_ok(p, "repeat_penalty 1");
    p = defaults(); p.repeat_last_n = -2; expect_bad(p, "repeat_last_n", "-2");
    p = defaults(); p.repeat_last_n = -1; expect_ok(p, "repeat_last_n -1");
    p = defaults(); p.n_predict = 0; expect_bad(p, "n_predict", "0");
    p = defaults(); p.n_predict = -2; expect_bad(p, "n_predict", "-2");
    p = defaults(); p.n_predict = 1; expect_ok(p, "n_predict 1");
    p = defaults(); p.n_logprobs = -2; expect_bad(p, "n_logprobs", "-2");
    p = defaults(); p.n_logprobs = G4R_MAX_TOP_LOGPROBS + 1; expect_bad(p, "n_logprobs", "21");
    p = defaults(); p.n_logprobs = G4R_MAX_TOP_LOGPROBS; expect_ok(p, "n_logprobs max");
    p = defaults(); p.n_logprobs = 0; expect_ok(p, "n_logprobs 0");
    p = defaults(); p.seed = 0; expect_ok(p, "seed 0");

    // Triggers: counts >= 0, arrays present, no NULL pattern, and only with a grammar.
    const char *pats[] = {"^<tool>", nullptr};
    const int32_t toks[] = {5};
    p = defaults(); p.grammar = "root ::= \"a\""; p.n_trigger_patterns = -1; expect_bad(p, "n_trigger_patterns", "-1");
    p = defaults(); p.grammar = "root ::= \"a\""; p.n_trigger_patterns = 1; expect_bad(p, "trigger_patterns", "NULL");
    p = defaults(); p.grammar = "root ::= \"a\""; p.trigger_patterns = pats; p.n_trigger_patterns = 2;
    expect_bad(p, "trigger_patterns", "index 1");
    p = defaults(); p.grammar = "root ::= \"a\""; p.n_trigger_tokens = -3; expect_bad(p, "n_trigger_tokens", "-3");
    p = defaults(); p.grammar = "root ::= \"a\""; p.n_trigger_tokens = 1; expect_bad(p, "trigger_tokens", "NULL");
    p = defaults(); p.trigger_tokens = toks; p.n_trigger_tokens = 1; expect_bad(p, "grammar", "1 trigger tokens");
    p = defaults(); p.grammar = ""; p.trigger_patterns = pats; p.n_trigger_patterns = 1;
    expect_bad(p, "grammar", "1 trigger patterns");
    p = defaults(); p.grammar = "root ::= \"a\""; p.trigger_patterns = pats; p.n_trigger_patterns = 1;
    p.trigger_tokens = toks; p.n_trigger_tokens = 1; expect_ok(p, "a lazy grammar");
}

// ---- the scheduler's policy without a model --------------------------------------------------
//
// sim mirrors what step() in g4r-scheduler.cpp does with the policy's decisions, on the
// counters the policy reads: sampling produces a token into the consumer's queue (and makes it
// pending, unless it ends the generation), evaluating a pending token moves it into the cache,
// a prompt chunk moves tokens from todo to the cache, and a finished prompt saves its logits.

struct sim_seq {
    g4r::sched_seq v;
    int rate = 1000;         // tokens its consumer takes after each step (0: stalled)
    int64_t produced = 0;    // tokens sampled
    int64_t taken = 0;       // tokens its consumer took
    int64_t stop_after = -1; // the n-th produced token is an end of generation (-1: never)
    int64_t n_token_rows = 0;
};

struct sim {
    std::vector<sim_seq> seqs;
    g4r::sched_limits limits;
    g4r::sched_plan plan;
    uint64_t n_ingests = 0;
    int64_t steps = 0;

    sim(int n, int32_t n_batch, int32_t n_ubatch, int32_t n_ctx_seq) : seqs(n) {
        limits.n_batch = n_batch;
        limits.n_ubatch = n_ubatch;
        limits.n_ctx_seq = n_ctx_seq;
    }

    std::vector<g4r::sched_seq> views() const {
        std::vector<g4r::sched_seq> out;
        for (const auto &s : seqs) out.push_back(s.v);
        return out;
    }

    // g4r_model_ingest then g4r_generate_start on a sequence (nothing cached).
    void ingest(int sid, size_t n_tokens, int32_t chunk) {
        sim_seq &s = seqs[sid];
        s.v = g4r::sched_seq{};
        s.v.n_todo = n_tokens;
        s.v.chunk = chunk;
        s.v.order = ++n_ingests;
        s.v.generating = true;
        s.produced = s.taken = 0;
    }

    void sample(sim_seq &s) {
        ++s.produced;
        ++s.v.n_ready;
        if (s.stop_after >= 0 && s.produced >= s.stop_after) {
            s.v.generating = false;  // an end-of-generation token: queued, never evaluated
            return;
        }
        s.v.has_pending = true;
    }

    // One step; returns the plan it followed (also in `plan`).
    const g4r::sched_plan &step() {
        ++steps;
        for (auto &s : seqs)
            if (g4r::sched_samples_saved(s.v)) {
                s.v.logits_saved = false;
                sample(s);
            }
        g4r::sched_plan_step(views(), limits, plan);
        for (int32_t sid : plan.window_full) {
            ++seqs[sid].v.n_ready;  // G4R_STOP_LENGTH
            seqs[sid].v.generating = false;
        }
        for (const auto &r : plan.rows) {
            sim_seq &s = seqs[r.seq];
            if (!r.prompt) {
                ++s.n_token_rows;
                ++s.v.n_past;
                s.v.has_pending = false;
                s.v.logits_saved = false;
                sample(s);
                continue;
            }
            s.v.n_past += static_cast<size_t>(r.n);
            s.v.n_todo -= static_cast<size_t>(r.n);
            if (s.v.n_todo > 0) continue;
            s.v.logits_saved = true;
            if (g4r::sched_samples_saved(s.v)) {
                s.v.logits_saved = false;
                sample(s);
            }
        }
        return plan;
    }

    void consume() {
        for (auto &s : seqs) {
            size_t k = std::min(s.v.n_ready, static_cast<size_t>(s.rate));
            s.v.n_ready -= k;
            s.taken += static_cast<int64_t>(k);
        }
    }
};

int32_t prompt_tokens(const g4r::sched_plan &plan) {
    int32_t n = 0;
    for (const auto &r : plan.rows) n += r.prompt ? r.n : 0;
    return n;
}

int32_t token_rows(const g4r::sched_plan &plan) {
    int32_t n = 0;
    for (const auto &r : plan.rows) n += r.prompt ? 0 : 1;
    return n;
}

const g4r::sched_row *prompt_row_of(const g4r::sched_plan &plan, int32_t sid) {
    for (const auto &r : plan.rows)
        if (r.prompt && r.seq == sid) return &r;
    return nullptr;
}

TEST(sched_every_generating_sequence_gets_one_token_per_step) {
    sim w(4, 2048, 512, 4096);
    for (int i = 0; i < 4; ++i) w.ingest(i, 10 + 5 * i, 512);
    w.step();  // all four prompts in one batch; each samples its first token from the logits
    w.consume();
    for (int i = 0; i < 4; ++i) CHECK(w.seqs[i].produced == 1, "seq %d produced %lld", i, (long long)w.seqs[i].produced);
    for (int step = 0; step < 50; ++step) {
        const auto &plan = w.step();
        CHECK(plan.rows.size() == 4 && plan.n_tokens == 4, "step %d: %zu rows", step, plan.rows.size());
        for (int i = 0; i < 4 && i < static_cast<int>(plan.rows.size()); ++i) {
            const auto &r = plan.rows[i];
            CHECK(r.seq == i && !r.prompt && r.n == 1 && r.first == i && r.logits, "step %d row %d", step, i);
        }
        w.consume();
    }
    for (int i = 0; i < 4; ++i)
        CHECK(w.seqs[i].produced == 51 && w.seqs[i].taken == 51, "seq %d: produced %lld", i,
              (long long)w.seqs[i].produced);
}

TEST(sched_a_long_prompt_is_chunked_between_the_others_tokens) {
    sim w(4, 2048, 512, 8192);
    for (int i = 0; i < 3; ++i) w.ingest(i, 20, 2048);
    w.step();
    w.consume();
    w.ingest(3, 3000, 2048);  // joins while three sequences generate
    int steps = 0;
    while (w.seqs[3].v.n_todo > 0) {
        size_t todo = w.seqs[3].v.n_todo;
        std::vector<int64_t> before;
        for (auto &s : w.seqs) before.push_back(s.produced);
        const auto &plan = w.step();
        ++steps;
        CHECK(token_rows(plan) == 3, "step %d: %d token rows", steps, token_rows(plan));
        for (int i = 0; i < 3; ++i)
            CHECK(w.seqs[i].produced == before[i] + 1, "step %d: seq %d starved", steps, i);
        const g4r::sched_row *r = prompt_row_of(plan, 3);
        CHECK(r != nullptr, "step %d: the prompt got no tokens", steps);
        if (!r) break;
        size_t want = std::min<size_t>(todo, 512);
        CHECK(static_cast<size_t>(r->n) == want, "step %d: a chunk of %d, not %zu", steps, r->n, want);
        CHECK(r->logits == (want == todo), "step %d: logits %d", steps, r->logits);
        CHECK(r->first == 3 && plan.rows.back().seq == 3, "step %d: the chunk follows the tokens", steps);
        w.consume();
    }
    CHECK(steps == 6, "3,000 tokens took %d steps of 512", steps);
    CHECK(w.seqs[3].produced == 1, "the prompt's first token is sampled in the step that ends it");
    const auto &plan = w.step();
    CHECK(token_rows(plan) == 4 && prompt_tokens(plan) == 0, "then it generates like the others");
}

TEST(sched_prompts_fill_the_batch_in_arrival_order_when_none_generates) {
    sim w(3, 2048, 512, 8192);
    w.ingest(2, 3000, 2048);  // first in, though its index is the highest
    w.ingest(0, 100, 2048);
    w.ingest(1, 50, 16);      // a small chunk: 16 tokens per step
    auto plan = w.step();
    CHECK(plan.rows.size() == 1 && plan.rows[0].seq == 2 && plan.rows[0].n == 2048 && !plan.rows[0].logits,
          "step 1: the oldest prompt takes the whole batch");
    plan = w.step();
    CHECK(plan.rows.size() == 3, "step 2: %zu rows", plan.rows.size());
    if (plan.rows.size() == 3) {
        CHECK(plan.rows[0].seq == 2 && plan.rows[0].n == 952 && plan.rows[0].logits, "its rest first");
        CHECK(plan.rows[1].seq == 0 && plan.rows[1].n == 100 && plan.rows[1].logits, "then the second prompt");
        CHECK(plan.rows[2].seq == 1 && plan.rows[2].n == 16 && !plan.rows[2].logits, "then a chunk of the third");
    }
    CHECK(w.seqs[2].produced == 1 && w.seqs[0].produced == 1 && w.seqs[1].produced == 0, "first tokens");
    plan = w.step();  // two generate now: the third prompt's chunk comes after their tokens
    CHECK(token_rows(plan) == 2 && plan.rows.back().seq == 1 && plan.rows.back().n == 16, "step 3");
}

TEST(sched_a_sequence_runs_at_most_read_ahead_tokens_before_its_consumer) {
    sim w(3, 2048, 512, 8192);
    for (int i = 0; i < 3; ++i) w.ingest(i, 8, 512);
    w.seqs[0].rate = 0;  // this consumer stops pulling
    w.seqs[2].rate = 1;
    for (int step = 0; step < 40; ++step) {
        const auto &plan = w.step();
        bool row0 = false;
        for (const auto &r : plan.rows) row0 |= r.seq == 0;
        CHECK(!row0 || step < static_cast<int>(g4r::kReadAhead), "step %d: the stalled sequence still evaluates", step);
        for (int i = 0; i < 3; ++i)
            CHECK(w.seqs[i].v.n_ready <= g4r::kReadAhead, "step %d: seq %d holds %zu", step, i, w.seqs[i].v.n_ready);
        w.consume();
    }
    CHECK(w.seqs[0].produced == static_cast<int64_t>(g4r::kReadAhead), "the stalled one produced %lld",
          (long long)w.seqs[0].produced);
    CHECK(w.seqs[0].n_token_rows == static_cast<int64_t>(g4r::kReadAhead) - 1, "evaluations spent on it: %lld",
          (long long)w.seqs[0].n_token_rows);
    CHECK(w.seqs[1].produced == 40 && w.seqs[2].produced == 40, "the others go on: %lld, %lld",
          (long long)w.seqs[1].produced, (long long)w.seqs[2].produced);
    w.seqs[0].rate = 2;  // it takes two: two more steps include it
    w.consume();
    w.step();
    w.consume();
    CHECK(w.seqs[0].produced == static_cast<int64_t>(g4r::kReadAhead) + 1, "it resumes one per step");
}

TEST(sched_a_full_window_stops_the_sequence_instead_of_evaluating) {
    sim w(2, 64, 32, 16);
    w.ingest(0, 10, 64);
    w.ingest(1, 4, 64);
    w.step();
    w.consume();
    bool stopped0 = false;
    for (int step = 0; step < 20; ++step) {
        size_t past0 = w.seqs[0].v.n_past;
        bool wanted0 = w.seqs[0].v.generating;
        const auto &plan = w.step();
        bool full = std::find(plan.window_full.begin(), plan.window_full.end(), 0) != plan.window_full.end();
        CHECK(full == (wanted0 && past0 >= 16), "step %d: n_past %zu, window_full %d", step, past0, full);
        for (const auto &r : plan.rows) CHECK(!(r.seq == 0 && past0 >= 16), "step %d: evaluates past the window", step);
        stopped0 |= full;
        for (const auto &s : w.seqs) CHECK(s.v.n_past <= 16, "a sequence holds %zu tokens", s.v.n_past);
        w.consume();
    }
    CHECK(stopped0 && !w.seqs[0].v.generating && !w.seqs[1].v.generating, "both stopped at the window");
}

TEST(sched_random_workloads_keep_every_rule) {
    std::mt19937 rng(42);
    for (int run = 0; run < 300; ++run) {
        int n = 1 + static_cast<int>(rng() % 8);
        const int32_t batches[] = {16, 64, 512, 2048};
        int32_t n_batch = batches[rng() % 4];
        int32_t n_ubatch = std::max<int32_t>(1, n_batch / (1 + static_cast<int32_t>(rng() % 4)));
        int32_t n_ctx_seq = 64 + static_cast<int32_t>(rng() % 4096);
        sim w(n, n_batch, n_ubatch, n_ctx_seq);
        for (int step = 0; step < 200; ++step) {
            // Arrivals, stalls and ends of generation at random.
            for (int i = 0; i < n; ++i) {
                sim_seq &s = w.seqs[i];
                bool idle = !s.v.generating && s.v.n_todo == 0;
                if ((idle && rng() % 4 == 0) || rng() % 97 == 0) {
                    w.ingest(i, 1 + rng() % std::min<uint32_t>(3000, static_cast<uint32_t>(n_ctx_seq)),
                             1 + static_cast<int32_t>(rng() % 2048));
                    s.stop_after = rng() % 3 == 0 ? 1 + static_cast<int64_t>(rng() % 50) : -1;
                }
                if (rng() % 10 == 0) s.rate = static_cast<int>(rng() % 3);
            }
            for (auto &s : w.seqs)
                if (g4r::sched_samples_saved(s.v)) {
                    s.v.logits_saved = false;
                    w.sample(s);
                }
            std::vector<g4r::sched_seq> before = w.views();
            std::vector<int64_t> produced;
            for (const auto &s : w.seqs) produced.push_back(s.produced);
            const auto &plan = w.step();  // (its own saved-logit pass finds nothing more to do)

            // Token rows: exactly the sequences that want a token and have one pending, in
            // sequence order, each one token, ahead of every prompt token.
            int32_t pos = 0, tok = 0, prompt = 0;
            bool seen_prompt = false;
            int32_t last_tok_seq = -1;
            uint64_t last_order = 0;
            std::vector<int> in_rows(n, 0);
            for (size_t k = 0; k < plan.rows.size(); ++k) {
                const auto &r = plan.rows[k];
                CHECK(r.first == pos && r.n >= 1, "run %d step %d: row %zu at %d, n %d", run, step, k, r.first, r.n);
                pos += r.n;
                in_rows[r.seq] |= r.prompt ? 2 : 1;
                const auto &b = before[r.seq];
                if (!r.prompt) {
                    CHECK(!seen_prompt && r.seq > last_tok_seq && r.n == 1 && r.logits, "run %d step %d: token row", run,
                          step);
                    last_tok_seq = r.seq;
                    ++tok;
                } else {
                    seen_prompt = true;
                    CHECK(b.order > last_order, "run %d step %d: prompts out of arrival order", run, step);
                    last_order = b.order;
                    CHECK(static_cast<size_t>(r.n) <= b.n_todo && r.n <= b.chunk, "run %d step %d: chunk %d", run, step,
                          r.n);
                    CHECK(r.logits == (static_cast<size_t>(r.n) == b.n_todo), "run %d step %d: logits", run, step);
                    bool full_chunk = static_cast<size_t>(r.n) == std::min<size_t>(b.n_todo, static_cast<size_t>(b.chunk));
                    CHECK(full_chunk || k + 1 == plan.rows.size(), "run %d step %d: a short chunk before others", run, step);
                    prompt += r.n;
                }
            }
            CHECK(pos == plan.n_tokens && plan.n_tokens <= n_batch, "run %d step %d: %d tokens", run, step, plan.n_tokens);
            int32_t budget = std::min(tok > 0 ? std::min(n_batch, n_ubatch) : n_batch, n_batch - tok);
            CHECK(prompt <= budget, "run %d step %d: %d prompt tokens over a budget of %d", run, step, prompt, budget);
            for (int i = 0; i < n; ++i) {
                const auto &b = before[i];
                bool wants = b.generating && b.n_ready < g4r::kReadAhead && b.has_pending;
                bool full = std::find(plan.window_full.begin(), plan.window_full.end(), i) != plan.window_full.end();
                CHECK((in_rows[i] & 1) == (wants && b.n_past < static_cast<size_t>(n_ctx_seq) ? 1 : 0),
                      "run %d step %d: seq %d token row %d", run, step, i, in_rows[i] & 1);
                CHECK(full == (wants && b.n_past >= static_cast<size_t>(n_ctx_seq)), "run %d step %d: seq %d window", run,
                      step, i);
                // No starvation: a waiting prompt left out means the budget was spent.
                if (b.n_todo > 0 && !(in_rows[i] & 2))
                    CHECK(prompt == budget, "run %d step %d: prompt of seq %d waits with budget left", run, step, i);
                CHECK(w.seqs[i].v.n_ready <= g4r::kReadAhead, "run %d step %d: seq %d holds %zu", run, step, i,
                      w.seqs[i].v.n_ready);
                CHECK(w.seqs[i].produced - produced[i] <= 1, "run %d step %d: seq %d produced twice", run, step, i);
            }
            w.consume();
        }
    }
}

void print_layout() {
    std::printf("{\"size\": %zu, \"fields\": {", sizeof(g4r_sampler_params));
#define FIELD(f, sep) std::printf("\"%s\": %zu%s", #f, offsetof(g4r_sampler_params, f), sep)
    FIELD(temp, ", ");
    FIELD(top_k, ", ");
    FIELD(top_p, ", ");
    FIELD(min_p, ", ");
    FIELD(repeat_penalty, ", ");
    FIELD(repeat_last_n, ", ");
    FIELD(seed, ", ");
    FIELD(grammar, ", ");
    FIELD(trigger_patterns, ", ");
    FIELD(n_trigger_patterns, ", ");
    FIELD(trigger_tokens, ", ");
    FIELD(n_trigger_tokens, ", ");
    FIELD(n_predict, ", ");
    FIELD(n_logprobs, "");
#undef FIELD
    std::printf("}}\n");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc == 2 && std::strcmp(argv[1], "--layout") == 0) {
        print_layout();
        return 0;
    }
    int run = 0;
    for (const auto &t : registry()) {
        bool selected = argc < 2;
        for (int i = 1; i < argc; ++i) selected |= std::strstr(t.name, argv[i]) != nullptr;
        if (!selected) continue;
        g_test = t.name;
        int before = g_failures;
        try {
            t.fn();
        } catch (const std::exception &e) {
            ++g_failures;
            std::fprintf(stderr, "FAIL %s: exception: %s\n", t.name, e.what());
        }
        std::printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", t.name);
        ++run;
    }
    std::printf("%d tests, %d checks, %d failures\n", run, g_checks, g_failures);
    return g_failures == 0 && run > 0 ? 0 : 1;
}
