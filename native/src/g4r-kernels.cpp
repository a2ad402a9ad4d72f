// g4r-kernels.cpp - the encoder's custom CPU operations (g4r-kernels.h).
//
// The operations are split into row kernels (scores, exp, axpy, GELU of a row) that exist in
// plain C++ and, on x86-64, in AVX2+FMA intrinsics under a function-level target attribute;
// kernels() picks the set once from the CPU's flags. The library itself is compiled for the
// baseline ISA, so nothing here runs an instruction the CPU lacks.
#include "g4r-kernels.h"

#include "g4r.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
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

// Scores of one query row against a head's keys (K transposed: kt[c * len + j]).
void scores_scalar(float *p, const float *q, const float *kt, int64_t dh, int64_t len, float scale) {
    for (int64_t j = 0; j < len; ++j) p[j] = 0.0f;
    for (int64_t c = 0; c < dh; ++c) {
        const float qc = q[c] * scale;
        const float *ktc = kt + c * len;
        for (int64_t j = 0; j < len; ++j) p[j] += qc * ktc[j];
    }
}

void exp_shifted_scalar(float *p, int64_t len, float m) {
    for (int64_t j = 0; j < len; ++j) p[j] = exp_scalar(p[j] - m);
}

void axpy_scalar(float *o, float w, const float *v, int64_t n) {
    for (int64_t c = 0; c < n; ++c) o[c] += w * v[c];
}

void gelu_bias_row_scalar(float *y, const float *x, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = gelu_scalar(x[i] + b[i]);
}

struct kernel_set {
    const char *name;
    void (*scores)(float *, const float *, const float *, int64_t, int64_t, float);
    void (*exp_shifted)(float *, int64_t, float);
    void (*axpy)(float *, float, const float *, int64_t);
    void (*gelu_bias_row)(float *, const float *, const float *, int64_t);
};

// ---- AVX2 with FMA: 8 lanes --------------------------------------------------------------
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define G4R_KERNELS_AVX2 1
#define G4R_AVX2 __attribute__((target("avx2,fma")))

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

G4R_AVX2 void scores_avx2(float *p, const float *q, const float *kt, int64_t dh, int64_t len, float scale) {
    int64_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t c = 0; c < dh; ++c)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(q[c] * scale), _mm256_loadu_ps(kt + c * len + j), acc);
        _mm256_storeu_ps(p + j, acc);
    }
    for (; j < len; ++j) {
        float acc = 0.0f;
        for (int64_t c = 0; c < dh; ++c) acc += q[c] * scale * kt[c * len + j];
        p[j] = acc;
    }
}

G4R_AVX2 void exp_shifted_avx2(float *p, int64_t len, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    int64_t j = 0;
    for (; j + 8 <= len; j += 8) _mm256_storeu_ps(p + j, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), mv)));
    for (; j < len; ++j) p[j] = exp_scalar(p[j] - m);
}

G4R_AVX2 void axpy_avx2(float *o, float w, const float *v, int64_t n) {
    const __m256 wv = _mm256_set1_ps(w);
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + c), _mm256_loadu_ps(o + c)));
    for (; c < n; ++c) o[c] += w * v[c];
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
#endif

const kernel_set &kernels() {
    static const kernel_set chosen = [] {
        kernel_set k{"baseline", scores_scalar, exp_shifted_scalar, axpy_scalar, gelu_bias_row_scalar};
#if defined(G4R_KERNELS_AVX2)
        // cpu_flags.h reports a flag only when the OS also saves its registers (XCR0).
        const std::string flags = " " + std::string(g4r_cpu_flags()) + " ";
        if (flags.find(" avx2 ") != std::string::npos && flags.find(" fma ") != std::string::npos)
            k = {"avx2", scores_avx2, exp_shifted_avx2, axpy_avx2, gelu_bias_row_avx2};
#endif
        return k;
    }();
    return chosen;
}

}  // namespace

void attention_op(ggml_tensor *dst, int ith, int nth, void *userdata) {
    const attention_params &ap = *static_cast<const attention_params *>(userdata);
    const kernel_set &k = kernels();
    const ggml_tensor *q = dst->src[0], *kk = dst->src[1], *v = dst->src[2];
    const int64_t d = q->ne[0];
    const int32_t H = ap.n_head;
    const int64_t dh = d / H;
    const float *Q = static_cast<const float *>(q->data);
    const float *K = static_cast<const float *>(kk->data);
    const float *V = static_cast<const float *>(v->data);
    float *O = static_cast<float *>(dst->data);
    thread_local std::vector<float> kt, p;  // one head's K transposed, one row's weights
    const int64_t n_pairs = static_cast<int64_t>(ap.n_texts) * H;
    for (int64_t pair = ith; pair < n_pairs; pair += nth) {
        const text_span &t = ap.texts[pair / H];
        const int64_t h0 = (pair % H) * dh, len = t.len;
        kt.resize(static_cast<size_t>(dh * len));
        p.resize(static_cast<size_t>(len));
        float *KT = kt.data(), *P = p.data();
        for (int64_t j = 0; j < len; ++j) {
            const float *kj = K + (t.start + j) * d + h0;
            for (int64_t c = 0; c < dh; ++c) KT[c * len + j] = kj[c];
        }
        for (int64_t r = 0; r < len; ++r) {
            k.scores(P, Q + (t.start + r) * d + h0, KT, dh, len, ap.scale);
            const float m = *std::max_element(P, P + len);
            k.exp_shifted(P, len, m);
            float sum = 0.0f;
            for (int64_t j = 0; j < len; ++j) sum += P[j];
            float *o = O + (t.start + r) * d + h0;
            std::fill(o, o + dh, 0.0f);
            for (int64_t j = 0; j < len; ++j) k.axpy(o, P[j], V + (t.start + j) * d + h0, dh);
            const float inv = 1.0f / sum;
            for (int64_t c = 0; c < dh; ++c) o[c] *= inv;
        }
    }
}

void gelu_bias_op(ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith, int nth, void *) {
    const kernel_set &k = kernels();
    const int64_t n = a->ne[0], rows = ggml_nrows(a);
    const float *b = static_cast<const float *>(bias->data);
    for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; ++r)
        k.gelu_bias_row(static_cast<float *>(dst->data) + r * n, static_cast<const float *>(a->data) + r * n, b, n);
}

}  // namespace g4r

const char *g4r_encoder_kernels(void) { return g4r::kernels().name; }
