// test_harness.h - the C++ tests' tiny harness (no third-party test framework): CHECK, TEST
// and the registry main() runs. Shared by native/tests/test_*.cpp.
#pragma once

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

namespace g4r_test {

inline int g_failures = 0;
inline int g_checks = 0;
inline const char *g_test = "";

struct test_case {
    const char *name;
    void (*fn)();
};

inline std::vector<test_case> &registry() {
    static std::vector<test_case> tests;
    return tests;
}

struct registrar {
    registrar(const char *name, void (*fn)()) { registry().push_back({name, fn}); }
};

}  // namespace g4r_test

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        ++g4r_test::g_checks;                                                     \
        if (!(cond)) {                                                            \
            ++g4r_test::g_failures;                                               \
            std::fprintf(stderr, "FAIL %s (%s:%d): %s: ", g4r_test::g_test, __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                    \
            std::fprintf(stderr, "\n");                                           \
            if (g4r_test::g_failures > 50) {                                      \
                std::printf("FAIL %s: too many failures, stopped\n", g4r_test::g_test); \
                std::exit(1);                                                     \
            }                                                                     \
        }                                                                         \
    } while (0)

#define TEST(name)                                            \
    void name();                                              \
    g4r_test::registrar name##_registrar(#name, name);        \
    void name()
