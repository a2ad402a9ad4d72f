// g4r-sched.cpp - the scheduler's policy (g4r-sched.h): pure, no llama.cpp.
#include "g4r-sched.h"

#include <algorithm>

namespace g4r {

bool sched_wants_token(const sched_seq &s) { return s.generating && s.n_ready < kReadAhead; }

bool sched_samples_saved(const sched_seq &s) {
    return sched_wants_token(s) && !s.has_pending && s.n_todo == 0 && s.logits_saved;
}

void sched_plan_step(const std::vector<sched_seq> &seqs, const sched_limits &limits, sched_plan &plan) {
    plan.window_full.clear();
    plan.rows.clear();
    plan.n_tokens = 0;
    const int32_t n_seqs = static_cast<int32_t>(seqs.size());
    // The pending token of every sequence that wants one, in sequence order.
    for (int32_t sid = 0; sid < n_seqs; ++sid) {
        const sched_seq &s = seqs[sid];
        if (!sched_wants_token(s) || !s.has_pending) continue;
        if (s.n_past >= static_cast<size_t>(limits.n_ctx_seq)) {
            plan.window_full.push_back(sid);
            continue;
        }
        plan.rows.push_back({sid, plan.n_tokens, 1, false, true});
        plan.n_tokens += 1;
    }
    // Then prompt chunks in arrival order, within the step's budget.
    const int32_t cap = limits.n_batch;
    int32_t budget = plan.rows.empty() ? cap : std::min(cap, limits.n_ubatch);
    budget = std::min(budget, cap - plan.n_tokens);
    std::vector<int32_t> waiting;
    for (int32_t sid = 0; sid < n_seqs; ++sid)
        if (seqs[sid].n_todo > 0) waiting.push_back(sid);
    std::stable_sort(waiting.begin(), waiting.end(),
                     [&seqs](int32_t a, int32_t b) { return seqs[a].order < seqs[b].order; });
    for (int32_t sid : waiting) {
        if (budget <= 0) break;
        const sched_seq &s = seqs[sid];
        int32_t k = std::min({static_cast<int32_t>(s.n_todo), s.chunk, budget});
        bool last = k == static_cast<int32_t>(s.n_todo);
        plan.rows.push_back({sid, plan.n_tokens, k, true, last});
        plan.n_tokens += k;
        budget -= k;
    }
}

}  // namespace g4r
