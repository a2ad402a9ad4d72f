// g4r-kernels.cpp - the encoder's custom CPU operations (g4r-kernels.h).
//
// Each operation is split into a kernel per unit of work (one head of one text; one row of
// GELU or of add+norm; a block of rows times one or two product panels) that exists in plain
// C++ and, on x86-64, in AVX2+FMA and AVX-512F intrinsics under function-level target
// attributes; kernel_sets() lists the sets the CPU's flags allow and the operations use the
// first. The library itself is compiled for the baseline ISA, so nothing here runs an
// instruction the CPU lacks.
//
// The C++ tests also compile this file with G4R_EMULATE_AVX512 (native/CMakeLists.txt,
// test_g4r_emulated): without target attributes, every intrinsic through SIMDe's portable
// forms, and every set listed whatever the CPU, so the AVX-512 kernels are tested on CPUs
// without AVX-512 too.
#include "g4r-kernels.h"

#include "g4r.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(G4R_EMULATE_AVX512)
#include "emulated_avx512.h"
#define G4R_KERNELS_X86 1
#define G4R_AVX2
#define G4R_AVX512
#elif (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define G4R_KERNELS_X86 1
#define G4R_AVX2 __attribute__((target("avx2,fma,f16c")))
#define G4R_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#endif

namespace g4r {

namespace {

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

// ---- baseline: plain C++ -----------------------------------------------------------------

// One head of one text: O = softmax(scale * Q K^T) V over its `len` rows. Q, K, V and O point
// at the text's first row of the head; input rows are `ld` floats apart, output rows `ldo`;
// the head has `dh` columns. `kt` holds 2 dh x round_up(len, 8) floats (K and V as the
// kernel lays them out; the plain one uses dh x len for K transposed), `p`
// kAttentionRows x round_up(len, 8).
void attention_head_scalar(const float *Q, const float *K, const float *V, int64_t ld, float *O, int64_t ldo,
                           int64_t dh, int64_t len, float scale, float *kt, float *p) {
    for (int64_t j = 0; j < len; ++j)
        for (int64_t c = 0; c < dh; ++c) kt[c * len + j] = K[j * ld + c];
    for (int64_t r = 0; r < len; ++r) {
        const float *q = Q + r * ld;
        for (int64_t j = 0; j < len; ++j) p[j] = 0.0f;
        for (int64_t c = 0; c < dh; ++c) {
            const float qc = q[c];
            const float *ktc = kt + c * len;
            for (int64_t j = 0; j < len; ++j) p[j] += qc * ktc[j];
        }
        float m = p[0] * scale;
        for (int64_t j = 0; j < len; ++j) m = std::max(m, p[j] * scale);
        float sum = 0.0f;
        for (int64_t j = 0; j < len; ++j) sum += p[j] = exp_scalar(p[j] * scale - m);
        float *o = O + r * ldo;
        for (int64_t c = 0; c < dh; ++c) o[c] = 0.0f;
        for (int64_t j = 0; j < len; ++j)
            for (int64_t c = 0; c < dh; ++c) o[c] += p[j] * V[j * ld + c];
        const float inv = 1.0f / sum;
        for (int64_t c = 0; c < dh; ++c) o[c] *= inv;
    }
}

void gelu_bias_row_scalar(float *y, const float *x, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = gelu_scalar(x[i] + b[i]);
}

// y = LayerNorm(x + b + r) * g + beta over one row of n (mean and variance of the row, as
// ggml_norm; eps inside the square root).
void add_norm_row_scalar(float *y, const float *x, const float *b, const float *r, const float *g,
                         const float *beta, int64_t n, float eps) {
    float mean = 0.0f;
    for (int64_t i = 0; i < n; ++i) mean += y[i] = x[i] + b[i] + r[i];
    mean /= static_cast<float>(n);
    float var = 0.0f;
    for (int64_t i = 0; i < n; ++i) var += (y[i] - mean) * (y[i] - mean);
    const float inv = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = (y[i] - mean) * inv * g[i] + beta[i];
}

}  // namespace

struct kernel_set {
    const char *name;
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

namespace {

// ---- AVX2 with FMA: 8 lanes --------------------------------------------------------------
#if defined(G4R_KERNELS_X86)

G4R_AVX2 inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLo)), _mm256_set1_ps(kExpHi));
    const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kP0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
    p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

G4R_AVX2 inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

G4R_AVX2 inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Scores of kAttentionRows query rows (q[i] rows) against NJ blocks of 8 keys from key `j`
// (`kt`: K in blocks of 8 keys, each dh x 8, read in order): NJ x kAttentionRows independent
// accumulator chains, so the FMA units stay busy.
template <int NJ>
G4R_AVX2 inline void scores_block(float *p, int64_t lp, const float *const q[kAttentionRows], const float *kt,
                                  int64_t dh, int64_t j, float scale) {
    __m256 acc[NJ][kAttentionRows];
    for (int b = 0; b < NJ; ++b)
        for (int i = 0; i < kAttentionRows; ++i) acc[b][i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < dh; ++c) {
        __m256 kv[NJ];
        for (int b = 0; b < NJ; ++b) kv[b] = _mm256_loadu_ps(kt + (j / 8 + b) * dh * 8 + c * 8);
        for (int i = 0; i < kAttentionRows; ++i) {
            const __m256 qv = _mm256_broadcast_ss(q[i] + c);
            for (int b = 0; b < NJ; ++b) acc[b][i] = _mm256_fmadd_ps(qv, kv[b], acc[b][i]);
        }
    }
    const __m256 sv = _mm256_set1_ps(scale);
    for (int b = 0; b < NJ; ++b)
        for (int i = 0; i < kAttentionRows; ++i)
            _mm256_storeu_ps(p + i * lp + j + 8 * b, _mm256_mul_ps(acc[b][i], sv));
}

// The baseline's head, computed kAttentionRows query rows at a time as two small matrix
// products in registers (scores 6 x 16 keys, output 6 rows x 16 columns: 12 accumulators, as
// the product tile); needs dh a multiple of 16. K and V are first copied into blocks that
// the two products read in order (K: 8 keys x dh; V: len rows x 16 columns), as a product's
// packed panels, instead of rows ld floats apart: one 512-token head 1.2x on Zen 3. Each
// score and output is the same chain of operations whatever rows are beside it.
G4R_AVX2 void attention_head_avx2(const float *Q, const float *K, const float *V, int64_t ld, float *O,
                                  int64_t ldo, int64_t dh, int64_t len, float scale, float *kt, float *p) {
    const int64_t lp = (len + 7) & ~int64_t{7};  // keys padded with zeros to whole vectors
    for (int64_t j = 0; j < lp; ++j) {  // K: blocks of 8 keys, each dh x 8
        float *to = kt + (j / 8) * dh * 8 + j % 8;
        for (int64_t c = 0; c < dh; ++c) to[c * 8] = j < len ? K[j * ld + c] : 0.0f;
    }
    float *vp = kt + dh * lp;  // V: blocks of 16 columns, each len x 16
    for (int64_t k = 0; k < len; ++k)
        for (int64_t c = 0; c < dh; c += 8)
            _mm256_storeu_ps(vp + (c / 16) * len * 16 + k * 16 + c % 16, _mm256_loadu_ps(V + k * ld + c));
    constexpr int R = kAttentionRows;
    for (int64_t r0 = 0; r0 < len; r0 += R) {
        const int64_t nr = std::min<int64_t>(R, len - r0);
        const float *q[R];
        for (int i = 0; i < R; ++i) q[i] = Q + (r0 + std::min<int64_t>(i, nr - 1)) * ld;  // repeat the last row
        int64_t j = 0;
        for (; j + 16 <= lp; j += 16) scores_block<2>(p, lp, q, kt, dh, j, scale);
        if (j < lp) scores_block<1>(p, lp, q, kt, dh, j, scale);
        float inv[R];
        for (int i = 0; i < R; ++i) {
            float *pi = p + i * lp;
            __m256 mv = _mm256_set1_ps(pi[0]);
            int64_t k = 0;
            for (; k + 8 <= len; k += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(pi + k));
            float m = hmax8(mv);
            for (; k < len; ++k) m = std::max(m, pi[k]);
            mv = _mm256_set1_ps(m);
            __m256 sv = _mm256_setzero_ps();
            for (k = 0; k + 8 <= len; k += 8) {
                const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(pi + k), mv));
                _mm256_storeu_ps(pi + k, e);
                sv = _mm256_add_ps(sv, e);
            }
            float sum = hsum8(sv);
            for (; k < len; ++k) sum += pi[k] = exp_scalar(pi[k] - m);
            inv[i] = 1.0f / sum;
        }
        for (int64_t c = 0; c < dh; c += 16) {
            __m256 acc[R][2];
            for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
            const float *vc = vp + (c / 16) * len * 16;
            for (int64_t k = 0; k < len; ++k) {
                const __m256 v0 = _mm256_loadu_ps(vc + k * 16), v1 = _mm256_loadu_ps(vc + k * 16 + 8);
                for (int i = 0; i < R; ++i) {
                    const __m256 w = _mm256_broadcast_ss(p + i * lp + k);
                    acc[i][0] = _mm256_fmadd_ps(w, v0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(w, v1, acc[i][1]);
                }
            }
            for (int64_t i = 0; i < nr; ++i) {
                const __m256 s = _mm256_set1_ps(inv[i]);
                _mm256_storeu_ps(O + (r0 + i) * ldo + c, _mm256_mul_ps(acc[i][0], s));
                _mm256_storeu_ps(O + (r0 + i) * ldo + c + 8, _mm256_mul_ps(acc[i][1], s));
            }
        }
    }
}

G4R_AVX2 void gelu_bias_row_avx2(float *y, const float *x, const float *b, int64_t n) {
    const __m256 a = _mm256_set1_ps(-kGeluA), k = _mm256_set1_ps(kGeluB), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 u = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(b + i));
        const __m256 z = _mm256_mul_ps(_mm256_mul_ps(a, u), _mm256_fmadd_ps(_mm256_mul_ps(k, u), u, one));
        _mm256_storeu_ps(y + i, _mm256_div_ps(u, _mm256_add_ps(one, exp8(z))));
    }
    for (; i < n; ++i) y[i] = gelu_scalar(x[i] + b[i]);
}

G4R_AVX2 void add_norm_row_avx2(float *y, const float *x, const float *b, const float *r, const float *g,
                                const float *beta, int64_t n, float eps) {
    __m256 sv = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 u = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(b + i)),
                                       _mm256_loadu_ps(r + i));
        _mm256_storeu_ps(y + i, u);
        sv = _mm256_add_ps(sv, u);
    }
    float mean = hsum8(sv);
    for (; i < n; ++i) mean += y[i] = x[i] + b[i] + r[i];
    mean /= static_cast<float>(n);
    const __m256 mv = _mm256_set1_ps(mean);
    sv = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 c = _mm256_sub_ps(_mm256_loadu_ps(y + i), mv);
        sv = _mm256_fmadd_ps(c, c, sv);
    }
    float var = hsum8(sv);
    for (; i < n; ++i) var += (y[i] - mean) * (y[i] - mean);
    const float inv = 1.0f / std::sqrt(var / static_cast<float>(n) + eps);
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(y + i), mv), iv);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(c, _mm256_loadu_ps(g + i), _mm256_loadu_ps(beta + i)));
    }
    for (; i < n; ++i) y[i] = (y[i] - mean) * inv * g[i] + beta[i];
}

// R rows x 16 columns of x . panel: 2R accumulators (R <= 6: 12 of the 16 vector registers,
// with 2 for the panel's row and 1 for a broadcast x value), one FMA chain per output vector,
// k sequential steps, so a row's result does not depend on R (the microkernel shape of BLIS's
// Haswell sgemm, Van Zee & van de Geijn 2015).
template <int R>
G4R_AVX2 void product_tile_avx2(const float *x, int64_t ldx, const float *panel, int64_t k, float *y, int64_t ldy) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *x0 = x, *x1 = x + ldx * (R > 1), *x2 = x + 2 * ldx * (R > 2), *x3 = x + 3 * ldx * (R > 3),
                *x4 = x + 4 * ldx * (R > 4), *x5 = x + 5 * ldx * (R > 5);
#define G4R_ROW(i)                                       \
    if (R > i) {                                         \
        const __m256 xv = _mm256_broadcast_ss(x##i + j); \
        c##i##0 = _mm256_fmadd_ps(xv, b0, c##i##0);      \
        c##i##1 = _mm256_fmadd_ps(xv, b1, c##i##1);      \
    }
#pragma GCC unroll 4
    for (int64_t j = 0; j < k; ++j) {
        const __m256 b0 = _mm256_loadu_ps(panel + 16 * j), b1 = _mm256_loadu_ps(panel + 16 * j + 8);
        G4R_ROW(0) G4R_ROW(1) G4R_ROW(2) G4R_ROW(3) G4R_ROW(4) G4R_ROW(5)
    }
#undef G4R_ROW
#define G4R_STORE(i)                                \
    if (R > i) {                                    \
        _mm256_storeu_ps(y + i * ldy, c##i##0);     \
        _mm256_storeu_ps(y + i * ldy + 8, c##i##1); \
    }
    G4R_STORE(0) G4R_STORE(1) G4R_STORE(2) G4R_STORE(3) G4R_STORE(4) G4R_STORE(5)
#undef G4R_STORE
}

G4R_AVX2 void product_panel_avx2(const float *x, int64_t ldx, int64_t rows, const float *panel, int64_t k, float *y,
                                 int64_t ldy) {
    int64_t r = 0;
    for (; r + 6 <= rows; r += 6) product_tile_avx2<6>(x + r * ldx, ldx, panel, k, y + r * ldy, ldy);
    x += r * ldx;
    y += r * ldy;
    switch (rows - r) {
        case 5: product_tile_avx2<5>(x, ldx, panel, k, y, ldy); break;
        case 4: product_tile_avx2<4>(x, ldx, panel, k, y, ldy); break;
        case 3: product_tile_avx2<3>(x, ldx, panel, k, y, ldy); break;
        case 2: product_tile_avx2<2>(x, ldx, panel, k, y, ldy); break;
        case 1: product_tile_avx2<1>(x, ldx, panel, k, y, ldy); break;
        default: break;
    }
}

G4R_AVX2 void product_rows_avx2(const float *x, int64_t ldx, int64_t rows, const float *panels, int64_t n_panels,
                                int64_t k, float *y, int64_t ldy) {
    for (int64_t p = 0; p < n_panels; ++p) product_panel_avx2(x, ldx, rows, panels + p * 16 * k, k, y + p * 16, ldy);
}

G4R_AVX2 void widen_f16_avx2(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i))));
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

G4R_AVX2 void widen_q8_0_avx2(const uint8_t *panel, float *dst, int64_t k) {
    for (int64_t b = 0; b < k / kQ8Block; ++b, panel += kQ8PanelBlock) {
        const float *d = reinterpret_cast<const float *>(panel);
        const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
        const int8_t *q = reinterpret_cast<const int8_t *>(panel + 16 * sizeof(float));
        for (int64_t j = 0; j < kQ8Block; ++j, q += 16, dst += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(q));
            _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d0));
            const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
            _mm256_storeu_ps(dst + 8, _mm256_mul_ps(hi, d1));
        }
    }
}

// ---- AVX-512F: 16 lanes, for the products --------------------------------------------------
// (attention, GELU and add+norm stay AVX2's: not yet measured wider)

// Rows and panels of an AVX-512 product tile: 12 rows x 2 panels (32 columns) are 24
// accumulators of the 32 vector registers, with 2 for the panels' row and 1 for a broadcast x
// value: the shape of BLIS's Skylake-X sgemm microkernel (32 x 12). Each output vector is the
// same chain of FMAs over the k inputs as in the AVX2 tile, so both sets give the same bits.
constexpr int kAvx512Rows = 12, kAvx512Panels = 2;

template <int R, int NP>
G4R_AVX512 void product_tile_avx512(const float *x, int64_t ldx, const float *panels, int64_t k, float *y,
                                    int64_t ldy) {
    __m512 acc[R][NP];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t j = 0; j < k; ++j) {
        __m512 b[NP];
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) b[p] = _mm512_loadu_ps(panels + p * 16 * k + 16 * j);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m512 xv = _mm512_set1_ps(x[r * ldx + j]);
#pragma GCC unroll 2
            for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(xv, b[p], acc[r][p]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) _mm512_storeu_ps(y + r * ldy + 16 * p, acc[r][p]);
}

// The last `rows` (< kAvx512Rows) rows: the tile of exactly that many.
template <int NP, int R = kAvx512Rows - 1>
G4R_AVX512 void product_tail_avx512(int64_t rows, const float *x, int64_t ldx, const float *panels, int64_t k,
                                    float *y, int64_t ldy) {
    if constexpr (R > 0) {
        if (rows == R)
            product_tile_avx512<R, NP>(x, ldx, panels, k, y, ldy);
        else
            product_tail_avx512<NP, R - 1>(rows, x, ldx, panels, k, y, ldy);
    }
}

template <int NP>
G4R_AVX512 void product_block_avx512(const float *x, int64_t ldx, int64_t rows, const float *panels, int64_t k,
                                     float *y, int64_t ldy) {
    int64_t r = 0;
    for (; r + kAvx512Rows <= rows; r += kAvx512Rows)
        product_tile_avx512<kAvx512Rows, NP>(x + r * ldx, ldx, panels, k, y + r * ldy, ldy);
    product_tail_avx512<NP>(rows - r, x + r * ldx, ldx, panels, k, y + r * ldy, ldy);
}

G4R_AVX512 void product_rows_avx512(const float *x, int64_t ldx, int64_t rows, const float *panels,
                                    int64_t n_panels, int64_t k, float *y, int64_t ldy) {
    for (int64_t p = 0; p < n_panels; p += kAvx512Panels) {
        if (n_panels - p >= kAvx512Panels)
            product_block_avx512<kAvx512Panels>(x, ldx, rows, panels + p * 16 * k, k, y + p * 16, ldy);
        else
            product_block_avx512<1>(x, ldx, rows, panels + p * 16 * k, k, y + p * 16, ldy);
    }
}

G4R_AVX512 void widen_f16_avx512(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i))));
    for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

// One int8 -> F32 and one multiply per weight, as widen_q8_0_avx2: the same values.
G4R_AVX512 void widen_q8_0_avx512(const uint8_t *panel, float *dst, int64_t k) {
    for (int64_t b = 0; b < k / kQ8Block; ++b, panel += kQ8PanelBlock) {
        const __m512 d = _mm512_loadu_ps(reinterpret_cast<const float *>(panel));
        const int8_t *q = reinterpret_cast<const int8_t *>(panel + 16 * sizeof(float));
        for (int64_t j = 0; j < kQ8Block; ++j, q += 16, dst += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(q));
            _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)), d));
        }
    }
}
#endif

const kernel_set kBaseline{"baseline", attention_head_scalar, gelu_bias_row_scalar, add_norm_row_scalar, 1,
                           nullptr, 0, nullptr, nullptr};
#if defined(G4R_KERNELS_X86)
const kernel_set kAvx2{"avx2", attention_head_avx2, gelu_bias_row_avx2, add_norm_row_avx2, 16,
                       product_rows_avx2, 1, widen_f16_avx2, widen_q8_0_avx2};
const kernel_set kAvx512{"avx512", attention_head_avx2, gelu_bias_row_avx2, add_norm_row_avx2, 16,
                         product_rows_avx512, kAvx512Panels, widen_f16_avx512, widen_q8_0_avx512};
#endif

// Whether the CPU has `flag` (cpu_flags.h reports one only when the OS also saves its
// registers, XCR0).
bool cpu_has(const char *flag) {
    return (" " + std::string(g4r_cpu_flags()) + " ").find(" " + std::string(flag) + " ") != std::string::npos;
}

}  // namespace

std::vector<const kernel_set *> kernel_sets() {
    std::vector<const kernel_set *> sets;
#if defined(G4R_EMULATE_AVX512)
    sets.push_back(&kAvx512);
    sets.push_back(&kAvx2);
#elif defined(G4R_KERNELS_X86)
    const bool avx2 = cpu_has("avx2") && cpu_has("fma") && cpu_has("f16c");
    if (avx2 && cpu_has("avx512f")) sets.push_back(&kAvx512);
    if (avx2) sets.push_back(&kAvx2);
#endif
    sets.push_back(&kBaseline);
    return sets;
}

const char *kernel_set_name(const kernel_set &k) { return k.name; }

namespace {

// The set the operations use: the one GPT4ALL_RAG_ENCODER_KERNELS names where this CPU runs
// it (benchmarks compare sets on one machine with it), else the first.
const kernel_set &kernels() {
    static const kernel_set *chosen = [] {
        const std::vector<const kernel_set *> sets = kernel_sets();
        const char *name = std::getenv("GPT4ALL_RAG_ENCODER_KERNELS");
        for (const kernel_set *k : sets)
            if (name && std::strcmp(name, k->name) == 0) return k;
        return sets.front();
    }();
    return *chosen;
}

}  // namespace

void attention_with(const kernel_set &k, ggml_tensor *dst, const attention_params &ap, work_queue &work) {
    const ggml_tensor *qkv = dst->src[0];
    const int64_t d = dst->ne[0], ld = qkv->ne[0], dh = d / ap.n_head;
    const auto head = dh % k.head_multiple == 0 ? k.attention_head : attention_head_scalar;
    thread_local std::vector<float> scratch;  // K and V laid out, and kAttentionRows rows of weights
    const int64_t n_pairs = static_cast<int64_t>(ap.n_texts) * ap.n_head;
    for (int64_t pair = work.take(); pair < n_pairs; pair = work.take()) {
        const text_span &t = ap.texts[pair / ap.n_head];
        const int64_t h0 = (pair % ap.n_head) * dh, lp = (t.len + 7) & ~int64_t{7};
        const float *in = static_cast<const float *>(qkv->data) + t.start * ld + h0;
        scratch.resize(static_cast<size_t>((2 * dh + kAttentionRows) * lp));
        head(in, in + d, in + 2 * d, ld, static_cast<float *>(dst->data) + t.start * d + h0, d, dh, t.len,
             ap.scale, scratch.data(), scratch.data() + 2 * dh * lp);
    }
}

void gelu_bias_with(const kernel_set &k, ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith,
                    int nth) {
    const int64_t n = a->ne[0], rows = ggml_nrows(a);
    const float *b = static_cast<const float *>(bias->data);
    for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; ++r)
        k.gelu_bias_row(static_cast<float *>(dst->data) + r * n, static_cast<const float *>(a->data) + r * n, b, n);
}

void add_norm_with(const kernel_set &k, ggml_tensor *dst, int ith, int nth, float eps) {
    const int64_t n = dst->ne[0], rows = ggml_nrows(dst);
    auto data = [&](int i) { return static_cast<const float *>(dst->src[i]->data); };
    for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; ++r)
        k.add_norm_row(static_cast<float *>(dst->data) + r * n, data(0) + r * n, data(1), data(2) + r * n, data(3),
                       data(4), n, eps);
}

bool pack_weight(packed_weight &pw, const std::vector<const ggml_tensor *> &parts) {
    if (parts.empty()) return false;
    const ggml_type type = parts[0]->type;
    const int64_t k = parts[0]->ne[0];
    int64_t n = 0;
    for (const ggml_tensor *t : parts) {
        if (t->type != type || t->ne[0] != k || !ggml_is_contiguous(t) || ggml_n_dims(t) > 2) return false;
        n += t->ne[1];
    }
    if (n % 16 != 0 || k <= 0) return false;
    if (type == GGML_TYPE_Q8_0) {
        // ggml's block_q8_0 (ggml-common.h): an F16 scale d, then 32 int8 quants
        if (ggml_blck_size(type) != kQ8Block || ggml_type_size(type) != 2 + kQ8Block || k % kQ8Block != 0)
            return false;
        pw.panel_bytes = static_cast<size_t>(k / kQ8Block) * kQ8PanelBlock;
    } else if (type == GGML_TYPE_F16 || type == GGML_TYPE_F32) {
        pw.panel_bytes = static_cast<size_t>(k) * 16 * ggml_type_size(type);
    } else {
        return false;
    }
    pw.k = k;
    pw.n = n;
    pw.type = type;
    pw.storage.assign(pw.panel_bytes * static_cast<size_t>(n / 16) + 64, 0);
    uint8_t *base = pw.storage.data();
    base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
    pw.data = base;
    int64_t row = 0;  // output index over the stacked parts
    for (const ggml_tensor *t : parts)
        for (int64_t r = 0; r < t->ne[1]; ++r, ++row) {
            const uint8_t *src = static_cast<const uint8_t *>(t->data) + r * t->nb[1];
            uint8_t *panel = base + (row / 16) * pw.panel_bytes;
            const int64_t o = row % 16;
            if (type == GGML_TYPE_Q8_0) {
                for (int64_t b = 0; b < k / kQ8Block; ++b, src += 2 + kQ8Block) {
                    uint8_t *dst = panel + b * kQ8PanelBlock;
                    ggml_fp16_t d;
                    std::memcpy(&d, src, sizeof d);
                    const float df = ggml_fp16_to_fp32(d);
                    std::memcpy(dst + o * sizeof(float), &df, sizeof df);
                    for (int64_t j = 0; j < kQ8Block; ++j) dst[16 * sizeof(float) + j * 16 + o] = src[2 + j];
                }
                continue;
            }
            const size_t es = ggml_type_size(type);
            for (int64_t j = 0; j < k; ++j) std::memcpy(panel + (j * 16 + o) * es, src + j * es, es);
        }
    return true;
}

// Rows of x per unit of product work. An F16 or Q8_0 panel is widened to F32 once per unit, as
// BLIS packs its B operand per block (Goto & van de Geijn 2008), so the more rows the fewer
// conversions; the kernel reads 4 bytes of x per 2 FMAs, little enough that x need not stay in
// L2 between panels. Profiled on a 2-core Zen 3 (512 KiB L2), MiniLM F16: 64 rows spent 5.7 %
// of the encoder's samples widening, 256 rows 2.6 %.
constexpr int64_t kProductRows = 256;

bool product_with(const kernel_set &k, ggml_tensor *dst, const packed_weight &w, work_queue &work) {
    if (!k.product_rows) return false;
    const ggml_tensor *x = dst->src[0];
    const int64_t T = x->ne[1], panels = w.n / 16, blocks = (T + kProductRows - 1) / kProductRows;
    const float *xd = static_cast<const float *>(x->data);
    float *yd = static_cast<float *>(dst->data);
    // a unit: k.product_panels consecutive panels (fewer at the end) for a block of rows
    const int64_t width = k.product_panels, groups = (panels + width - 1) / width;
    thread_local std::vector<float> wide;  // F16 or Q8_0 panels, widened
    // units block-major, so the threads work on one block of x at a time
    for (int64_t u = work.take(); u < blocks * groups; u = work.take()) {
        const int64_t r0 = (u / groups) * kProductRows, p0 = (u % groups) * width,
                      np = std::min(width, panels - p0);
        const float *first = reinterpret_cast<const float *>(w.panel(p0));  // F32 panels are 16 k floats apart
        if (w.type != GGML_TYPE_F32) {
            wide.resize(static_cast<size_t>(w.k * 16 * np));
            for (int64_t i = 0; i < np; ++i) {
                float *to = wide.data() + i * 16 * w.k;
                if (w.type == GGML_TYPE_F16)
                    k.widen_f16(reinterpret_cast<const uint16_t *>(w.panel(p0 + i)), to, w.k * 16);
                else
                    k.widen_q8_0(w.panel(p0 + i), to, w.k);
            }
            first = wide.data();
        }
        k.product_rows(xd + r0 * w.k, w.k, std::min(kProductRows, T - r0), first, np, w.k,
                       yd + r0 * w.n + p0 * 16, w.n);
    }
    return true;
}

// GPT4ALL_RAG_ENCODER_PRODUCTS=g4r or ggml overrides the choice (benchmarks compare both on
// one machine with it); "g4r" still needs a set with a product kernel.
bool own_products() {
    static const bool own = [] {
        const char *choice = std::getenv("GPT4ALL_RAG_ENCODER_PRODUCTS");
        if (choice && std::strcmp(choice, "ggml") == 0) return false;
        if (!kernels().product_rows) return false;
        return (choice && std::strcmp(choice, "g4r") == 0) || !cpu_has("avx512f");
    }();
    return own;
}

void product_op(ggml_tensor *dst, int, int, void *userdata) {
    auto *node = static_cast<product_node *>(userdata);
    product_with(kernels(), dst, *node->weight, node->work);
}

void attention_op(ggml_tensor *dst, int, int, void *userdata) {
    auto *node = static_cast<attention_node *>(userdata);
    attention_with(kernels(), dst, *node->params, node->work);
}

void gelu_bias_op(ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith, int nth, void *) {
    gelu_bias_with(kernels(), dst, a, bias, ith, nth);
}

void add_norm_op(ggml_tensor *dst, int ith, int nth, void *userdata) {
    add_norm_with(kernels(), dst, ith, nth, *static_cast<const float *>(userdata));
}

}  // namespace g4r

const char *g4r_encoder_kernels(void) { return g4r::kernels().name; }

const char *g4r_encoder_kernel_sets(void) {
    static const std::string names = [] {
        std::string all;
        for (const g4r::kernel_set *k : g4r::kernel_sets()) all += (all.empty() ? "" : " ") + std::string(k->name);
        return all;
    }();
    return names.c_str();
}

const char *g4r_encoder_products(void) { return g4r::own_products() ? "g4r" : "ggml"; }
