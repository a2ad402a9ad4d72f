// test_sampling.cpp - our repetition penalty against llama.cpp's own penalties sampler
// (llama_sampler_init_penalties) on the same logits, and the one check of g4r_sampler_params.
#include "test_harness.h"

namespace {

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

}  // namespace
