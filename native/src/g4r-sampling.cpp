// g4r-sampling.cpp - sampler parameters and their one check, the sampler chain, the
// repetition penalty sampler, log-probabilities.
#include "g4r-impl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace g4r {

namespace {

// Repetition penalty with the arithmetic of llama.cpp's penalties sampler (repeat penalty only:
// a logit l of a token seen in the last `last_n` accepted tokens becomes l * p if l <= 0, else
// l / p). llama.cpp's sampler looks every vocabulary entry up in its count map (49,152 hash
// lookups per token for SmolLM2); this one touches only the tokens of the window, so the same
// result costs O(last_n) when the candidates are still in token-id order, which they are at the
// head of our chain. Otherwise it falls back to one scan of the candidates.
// native/tests/test_g4r.cpp checks it against llama_sampler_init_penalties on the same logits.
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

// A float as the message of a failed check shows it: shortest round trip, "nan", "inf".
std::string show(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    return buf;
}

g4r_status bad(const char *field, const std::string &rule, const std::string &got) {
    return set_error(G4R_ERR_INVALID_ARGUMENT, std::string(field) + " must be " + rule + ", got " + got);
}

}  // namespace

llama_sampler *repeat_penalty_init(int32_t last_n, float penalty) {
    auto st = std::make_unique<repeat_penalty_state>();
    st->last_n = last_n;
    st->penalty = penalty;
    llama_sampler *smpl = llama_sampler_init(&g_repeat_penalty_iface, st.get());
    if (!smpl) throw std::bad_alloc();
    st.release();
    return smpl;
}

g4r_status check_sampler_params(const g4r_sampler_params *p) {
    if (!p) return set_error(G4R_ERR_INVALID_ARGUMENT, "params is NULL");
    if (!std::isfinite(p->temp) || p->temp < 0.0f) return bad("temp", "a finite number >= 0", show(p->temp));
    if (p->top_k < 0) return bad("top_k", ">= 0", std::to_string(p->top_k));
    if (!std::isfinite(p->top_p) || !(p->top_p > 0.0f && p->top_p <= 1.0f))
        return bad("top_p", "in (0, 1]", show(p->top_p));
    if (!std::isfinite(p->min_p) || !(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return bad("min_p", "in [0, 1]", show(p->min_p));
    if (!std::isfinite(p->repeat_penalty) || !(p->repeat_penalty > 0.0f))
        return bad("repeat_penalty", "a finite number > 0", show(p->repeat_penalty));
    if (p->repeat_last_n < -1) return bad("repeat_last_n", ">= -1", std::to_string(p->repeat_last_n));
    if (p->n_trigger_patterns < 0)
        return bad("n_trigger_patterns", ">= 0", std::to_string(p->n_trigger_patterns));
    if (p->n_trigger_patterns > 0 && !p->trigger_patterns)
        return bad("trigger_patterns", "an array of n_trigger_patterns strings",
                   "NULL with n_trigger_patterns " + std::to_string(p->n_trigger_patterns));
    for (int32_t i = 0; i < p->n_trigger_patterns; ++i)
        if (!p->trigger_patterns[i])
            return bad("trigger_patterns", "NUL-terminated strings", "NULL at index " + std::to_string(i));
    if (p->n_trigger_tokens < 0) return bad("n_trigger_tokens", ">= 0", std::to_string(p->n_trigger_tokens));
    if (p->n_trigger_tokens > 0 && !p->trigger_tokens)
        return bad("trigger_tokens", "an array of n_trigger_tokens ids",
                   "NULL with n_trigger_tokens " + std::to_string(p->n_trigger_tokens));
    if ((p->n_trigger_patterns > 0 || p->n_trigger_tokens > 0) && !(p->grammar && p->grammar[0]))
        return bad("grammar", "set when there are grammar triggers", "none with " +
                   std::to_string(p->n_trigger_patterns) + " trigger patterns and " +
                   std::to_string(p->n_trigger_tokens) + " trigger tokens");
    if (p->n_predict < -1 || p->n_predict == 0)
        return bad("n_predict", "-1 or >= 1", std::to_string(p->n_predict));
    if (p->n_logprobs < -1 || p->n_logprobs > G4R_MAX_TOP_LOGPROBS)
        return bad("n_logprobs", "in [-1, " + std::to_string(G4R_MAX_TOP_LOGPROBS) + "]",
                   std::to_string(p->n_logprobs));
    return G4R_OK;
}

llama_sampler *make_repeat_penalty(const g4r_sampler_params &p, int32_t n_ctx_seq,
                                   const std::vector<llama_token> &past,
                                   const std::vector<llama_token> &todo) {
    int32_t last_n = p.repeat_last_n == -1 ? n_ctx_seq : p.repeat_last_n;
    if (last_n <= 0 || p.repeat_penalty == 1.0f) return nullptr;
    llama_sampler *pen = repeat_penalty_init(last_n, p.repeat_penalty);
    std::vector<llama_token> all(past);
    all.insert(all.end(), todo.begin(), todo.end());
    size_t from = all.size() > static_cast<size_t>(last_n) ? all.size() - last_n : 0;
    for (size_t i = from; i < all.size(); ++i) llama_sampler_accept(pen, all[i]);
    return pen;
}

llama_sampler *make_sampler_chain(const llama_vocab *vocab, const g4r_sampler_params &p, int32_t n_ctx_seq,
                                  const std::vector<llama_token> &past, const std::vector<llama_token> &todo) {
    auto sp = llama_sampler_chain_default_params();
    sp.no_perf = true;
    llama_sampler *chain = llama_sampler_chain_init(sp);
    struct chain_guard {
        llama_sampler *&c;
        ~chain_guard() { if (c) llama_sampler_free(c); }
    } guard{chain};
    if (p.grammar && p.grammar[0]) {
        t_last_log_error.clear();
        std::string printed;  // llama.cpp's grammar parser reports errors with fprintf(stderr)
        llama_sampler *g = nullptr;
        {
            StderrCapture capture(printed);
            if (p.n_trigger_patterns > 0 || p.n_trigger_tokens > 0) {
                std::vector<const char *> pats(p.trigger_patterns, p.trigger_patterns + p.n_trigger_patterns);
                g = llama_sampler_init_grammar_lazy_patterns(
                    vocab, p.grammar, "root", pats.data(), pats.size(),
                    reinterpret_cast<const llama_token *>(p.trigger_tokens), static_cast<size_t>(p.n_trigger_tokens));
            } else {
                g = llama_sampler_init_grammar(vocab, p.grammar, "root");
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
    if (llama_sampler *pen = make_repeat_penalty(p, n_ctx_seq, past, todo)) llama_sampler_chain_add(chain, pen);
    if (p.temp <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    } else {
        if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
        if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, 1));
        if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, 1));
        llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temp));
        llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
    }
    llama_sampler *out = chain;
    chain = nullptr;
    return out;
}

double log_sum_exp(const float *logits, int32_t n_vocab) {
    float mx = *std::max_element(logits, logits + n_vocab);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    return static_cast<double>(mx) + std::log(sum);
}

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

}  // namespace g4r

using namespace g4r;

static_assert(G4R_DEFAULT_SEED == LLAMA_DEFAULT_SEED, "G4R_DEFAULT_SEED is llama.cpp's random-seed value");

extern "C" {

void g4r_sampler_default_params(g4r_sampler_params *params) {
    if (!params) return;
    g4r_sampler_params p{};
    p.temp = 0.7f;
    p.top_k = 40;
    p.top_p = 0.4f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.18f;
    p.repeat_last_n = 64;
    p.seed = G4R_DEFAULT_SEED;
    p.grammar = nullptr;
    p.trigger_patterns = nullptr;
    p.n_trigger_patterns = 0;
    p.trigger_tokens = nullptr;
    p.n_trigger_tokens = 0;
    p.n_predict = -1;
    p.n_logprobs = -1;
    *params = p;
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

}  // extern "C"
