// emulated_avx512.h - the intrinsics of native/src/g4r-kernels.cpp through SIMDe (the
// simde-py package's headers, found by native/CMakeLists.txt), for the C++ tests' emulated
// build (G4R_EMULATE_AVX512, bin/test_g4r_emulated): the AVX-512 and AVX2 kernels run on any
// x86-64 CPU, each intrinsic in SIMDe's portable form with the instruction's semantics.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

// SIMDe 0.8.2 has no form of VCVTPH2PS's scalar intrinsic: the same through its vector form.
#if !defined(_cvtsh_ss)
inline float g4r_emulated_cvtsh_ss(unsigned short h) {
    return simde_mm_cvtss_f32(simde_mm_cvtph_ps(simde_mm_cvtsi32_si128(h)));
}
#define _cvtsh_ss(h) g4r_emulated_cvtsh_ss(h)
#endif

// Nor of VPMOVSXBD zmm (sign-extend 16 int8 to 16 int32): the same from
// its two 8-lane halves.
#if !defined(_mm512_cvtepi8_epi32)
inline simde__m512i g4r_emulated_cvtepi8_epi32(simde__m128i a) {
    const simde__m256i lo = simde_mm256_cvtepi8_epi32(a), hi = simde_mm256_cvtepi8_epi32(simde_mm_srli_si128(a, 8));
    return simde_mm512_inserti64x4(simde_mm512_castsi256_si512(lo), hi, 1);
}
#define _mm512_cvtepi8_epi32(a) g4r_emulated_cvtepi8_epi32(a)
#endif
