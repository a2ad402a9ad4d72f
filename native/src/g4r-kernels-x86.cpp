// g4r-kernels-x86.cpp - the BERT encoder's kernel sets for x86-64 (g4r-kernel-set.h): "avx2"
// (AVX2 with FMA and F16C, 8 lanes) and "avx512" (AVX-512F: the products 16 lanes wide, its
// other kernels AVX2's), each under a function-level target attribute, so the library itself
// stays compiled for the baseline ISA; g4r-kernels.cpp lists them where the CPU's flags allow.
//
// The C++ tests also compile this file with G4R_EMULATE_AVX512 (native/CMakeLists.txt,
// test_g4r_emulated): without target attributes, every intrinsic through SIMDe's portable
// forms, so the AVX-512 kernels are tested on CPUs without AVX-512 too.
#include "g4r-kernel-set.h"

#if defined(G4R_EMULATE_AVX512)
#include "emulated_avx512.h"
#define G4R_AVX2
#define G4R_AVX512
#elif defined(G4R_KERNELS_X86)
#include <immintrin.h>
#define G4R_AVX2 __attribute__((target("avx2,fma,f16c")))
#define G4R_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#endif

#if defined(G4R_KERNELS_X86)

namespace g4r {

namespace {

// ---- AVX2 with FMA: 8 lanes --------------------------------------------------------------

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

}  // namespace

const kernel_set kAvx2{"avx2", attention_head_avx2, gelu_bias_row_avx2, add_norm_row_avx2, 16,
                       product_rows_avx2, 1, widen_f16_avx2, widen_q8_0_avx2};
const kernel_set kAvx512{"avx512", attention_head_avx2, gelu_bias_row_avx2, add_norm_row_avx2, 16,
                         product_rows_avx512, kAvx512Panels, widen_f16_avx512, widen_q8_0_avx512};

}  // namespace g4r

#endif
