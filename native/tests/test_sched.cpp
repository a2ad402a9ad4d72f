// test_sched.cpp - the scheduler's policy (g4r-sched.h) driven without a model: fairness,
// prompt chunking, arrival order, the read-ahead bound, a full window.
#include "test_harness.h"

namespace {

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

}  // namespace
