// g4r-kernel-set.h - what the BERT encoder's kernel sets share (g4r-kernels.cpp: the plain C++
// set, the choice of a set and the operations; g4r-kernels-x86.cpp: the AVX2 and AVX-512 sets):
// the table of one set's kernels, the constants of their arithmetic and layouts, and the scalar
// functions the vector kernels finish their tails with. Internal to those two files.
#ifndef G4R_KERNEL_SET_H
#define G4R_KERNEL_SET_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// Whether g4r-kernels-x86.cpp compiles its sets: x86-64 with GCC or Clang (function-level
// target attributes), or the C++ tests' emulated build (G4R_EMULATE_AVX512: SIMDe).
#if defined(G4R_EMULATE_AVX512) || \
    ((defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)))
#define G4R_KERNELS_X86 1
#endif

namespace g4r {

// e^x for x in [-87.3, 88.3] (clamped there), relative error ~2 ulp: Cephes' expf
// (S. Moshier): x = n ln 2 + r with ln 2 split in two constants, e^r by a polynomial,
// 2^n from the exponent bits.
constexpr float kExpLo = -87.3f, kExpHi = 88.3f, kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
// GELU, tanh form: x * sigmoid(kGeluA * x * (1 + kGeluB * x^2)), kGeluA = 2 sqrt(2 / pi).
constexpr float kGeluA = 1.5957691216057308f, kGeluB = 0.044715f;
// Query rows an AVX2 attention head computes at a time: 6 rows x 16 keys (or columns) are 12
// accumulators, enough independent FMA chains for two FMA units of 4 cycles' latency; with 4
// rows (8 chains) attention took 28 % of a 512-token text's samples for 18 % of its FLOPs.
constexpr int kAttentionRows = 6;
// A Q8_0 panel (packed_weight): per block of 32 inputs, 16 F32 scales, then 32 x 16 int8.
constexpr int64_t kQ8Block = 32, kQ8PanelBlock = 16 * sizeof(float) + kQ8Block * 16;

inline float exp_scalar(float x) {
    x = std::min(std::max(x, kExpLo), kExpHi);
    const float n = std::floor(x * kLog2e + 0.5f);
    const float r = x - n * kLn2Hi - n * kLn2Lo;
    float p = kP0;
    p = p * r + kP1;
    p = p * r + kP2;
    p = p * r + kP3;
    p = p * r + kP4;
    p = p * r + kP5;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

inline float gelu_scalar(float u) { return u / (1.0f + exp_scalar(-kGeluA * u * (1.0f + kGeluB * u * u))); }

// One set's kernels, each for one unit of work.
struct kernel_set {
    const char *name;
    // One head of one text: O = softmax(scale * Q K^T) V over its `len` rows. Q, K, V and O
    // point at the text's first row of the head; input rows are `ld` floats apart, output rows
    // `ldo`; the head has `dh` columns. `kt` holds 2 dh x round_up(len, 8) floats (K and V as
    // the kernel lays them out; the plain one uses dh x len for K transposed), `p`
    // kAttentionRows x round_up(len, 8).
    void (*attention_head)(const float *, const float *, const float *, int64_t, float *, int64_t, int64_t,
                           int64_t, float, float *, float *);
    void (*gelu_bias_row)(float *, const float *, const float *, int64_t);
    void (*add_norm_row)(float *, const float *, const float *, const float *, const float *, const float *,
                         int64_t, float);
    int64_t head_multiple;  // head sizes this set's attention takes (others: the baseline's)
    // y[r][16 n_panels] = x[r] . panels for `rows` rows (x rows ldx floats apart, y rows ldy),
    // n_panels (at most product_panels) consecutive k x 16 F32 panels, 16 k floats apart; null
    // where the set has none (ggml keeps the products).
    void (*product_rows)(const float *x, int64_t ldx, int64_t rows, const float *panels, int64_t n_panels,
                         int64_t k, float *y, int64_t ldy);
    int64_t product_panels;  // panels a unit of product work takes at once
    // a panel widened to F32, with product_rows: F16 values (n of them), and a Q8_0 panel of k
    // inputs (packed_weight's layout)
    void (*widen_f16)(const uint16_t *src, float *dst, int64_t n);
    void (*widen_q8_0)(const uint8_t *panel, float *dst, int64_t k);
};

// The plain C++ head (g4r-kernels.cpp), which every set falls back on for head sizes that are
// not a multiple of its head_multiple.
void attention_head_scalar(const float *Q, const float *K, const float *V, int64_t ld, float *O, int64_t ldo,
                           int64_t dh, int64_t len, float scale, float *kt, float *p);

#if defined(G4R_KERNELS_X86)
extern const kernel_set kAvx2, kAvx512;  // g4r-kernels-x86.cpp
#endif

}  // namespace g4r

#endif
