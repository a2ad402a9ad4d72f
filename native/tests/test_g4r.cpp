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
#include "test_harness.h"

namespace {

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
    for (const auto &t : g4r_test::registry()) {
        bool selected = argc < 2;
        for (int i = 1; i < argc; ++i) selected |= std::strstr(t.name, argv[i]) != nullptr;
        if (!selected) continue;
        g4r_test::g_test = t.name;
        int before = g4r_test::g_failures;
        try {
            t.fn();
        } catch (const std::exception &e) {
            ++g4r_test::g_failures;
            std::fprintf(stderr, "FAIL %s: exception: %s\n", t.name, e.what());
        }
        std::printf("%s %s\n", g4r_test::g_failures == before ? "ok  " : "FAIL", t.name);
        ++run;
    }
    std::printf("%d tests, %d checks, %d failures\n", run, g4r_test::g_checks, g4r_test::g_failures);
    return g4r_test::g_failures == 0 && run > 0 ? 0 : 1;
}
