// g4r-kernels.cpp - the encoder's custom CPU operations (g4r-kernels.h).
//
// Each operation is split into a kernel per unit of work (one head of one text; one row of
// GELU or of add+norm; a block of rows times one or two product panels) that exists in plain
// C++ (here) and, on x86-64, in AVX2+FMA and AVX-512F intrinsics (g4r-kernels-x86.cpp);
// kernel_sets() lists the sets the CPU's flags allow and the operations use the first.
#include "g4r-kernels.h"

#include "g4r-kernel-set.h"
#include "g4r.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace g4r {

// ---- baseline: plain C++ -----------------------------------------------------------------

// kernel_set::attention_head in plain C++ (g4r-kernel-set.h).
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

namespace {

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

const kernel_set kBaseline{"baseline", attention_head_scalar, gelu_bias_row_scalar, add_norm_row_scalar, 1,
                           nullptr, 0, nullptr, nullptr};

// Whether the CPU has `flag` (cpu_flags.h reports one only when the OS also saves its
// registers, XCR0).
bool cpu_has(const char *flag) {
    return (" " + std::string(g4r_cpu_flags()) + " ").find(" " + std::string(flag) + " ") != std::string::npos;
}

}  // namespace

std::vector<const kernel_set *> kernel_sets() {
    std::vector<const kernel_set *> sets;
#if defined(G4R_EMULATE_AVX512)  // the C++ tests' emulated build: every set runs anywhere
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
