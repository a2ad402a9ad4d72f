// test_kernels.cpp - the BERT encoder's own operations (g4r-kernels.h), every kernel set this
// CPU runs (AVX-512 and AVX2+FMA where it has them, and always the plain C++ one that a CPU
// without them gets), against double-precision references on random inputs; the work shared
// out between threads against one thread doing all of it; the sets' products against each
// other, bit for bit. bin/test_g4r_emulated runs them over every set on any CPU
// (G4R_EMULATE_AVX512: SIMDe's forms of the intrinsics).
#include "test_harness.h"

#include "g4r-kernels.h"

#include <thread>

namespace {

// `f(queue)` on `n` threads at once, all taking units from one work_queue.
template <class F>
void on_threads(int n, F f) {
    g4r::work_queue queue;
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) threads.emplace_back([&] { f(queue); });
    for (std::thread &t : threads) t.join();
}

struct context {
    ggml_context *ctx;
    context() {
        ggml_init_params ip{size_t{64} << 20, nullptr, /*no_alloc=*/false};
        ctx = ggml_init(ip);
    }
    ~context() { ggml_free(ctx); }
};

std::mt19937 &rng() {
    static std::mt19937 gen(20261206);
    return gen;
}

void fill_normal(ggml_tensor *t, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    float *p = static_cast<float *>(t->data);
    for (int64_t i = 0; i < ggml_nelements(t); ++i) p[i] = dist(rng());
}

float max_rel_error(const ggml_tensor *t, const std::vector<double> &ref) {
    const float *p = static_cast<const float *>(t->data);
    double worst = 0.0;
    for (size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, std::fabs(p[i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
    return static_cast<float>(worst);
}

// softmax(scale Q K^T) V per text and head, in double.
std::vector<double> attention_reference(const ggml_tensor *qkv, int64_t d, int32_t n_head,
                                        const std::vector<g4r::text_span> &texts, float scale) {
    const int64_t ld = qkv->ne[0], dh = d / n_head, T = qkv->ne[1];
    const float *x = static_cast<const float *>(qkv->data);
    std::vector<double> out(static_cast<size_t>(d * T), 0.0);
    for (const auto &t : texts)
        for (int32_t h = 0; h < n_head; ++h)
            for (int64_t r = 0; r < t.len; ++r) {
                std::vector<double> w(static_cast<size_t>(t.len));
                double m = -1e300, sum = 0.0;
                for (int64_t j = 0; j < t.len; ++j) {
                    double s = 0.0;
                    for (int64_t c = 0; c < dh; ++c)
                        s += double(x[(t.start + r) * ld + h * dh + c]) * x[(t.start + j) * ld + d + h * dh + c];
                    w[j] = s * scale;
                    m = std::max(m, w[j]);
                }
                for (double &v : w) sum += v = std::exp(v - m);
                for (int64_t c = 0; c < dh; ++c) {
                    double o = 0.0;
                    for (int64_t j = 0; j < t.len; ++j) o += w[j] * x[(t.start + j) * ld + 2 * d + h * dh + c];
                    out[(t.start + r) * d + h * dh + c] = o / sum;
                }
            }
    return out;
}

}  // namespace

TEST(encoder_kernel_sets_follow_the_cpus_flags) {
    std::vector<std::string> names;
    for (const g4r::kernel_set *k : g4r::kernel_sets()) names.push_back(g4r::kernel_set_name(*k));
    std::string listed;
    for (const std::string &n : names) listed += n + " ";
#if defined(G4R_EMULATE_AVX512)
    const std::vector<std::string> expected{"avx512", "avx2", "baseline"};
#else
    const std::string flags = " " + std::string(g4r_cpu_flags()) + " ";
    auto has = [&](const char *f) { return flags.find(" " + std::string(f) + " ") != std::string::npos; };
    std::vector<std::string> expected;
#if defined(__x86_64__)
    const bool avx2 = has("avx2") && has("fma") && has("f16c");
    if (avx2 && has("avx512f")) expected.push_back("avx512");
    if (avx2) expected.push_back("avx2");
#endif
    expected.push_back("baseline");
#endif
    CHECK(names == expected, "sets listed: %s", listed.c_str());
}

TEST(encoder_attention_matches_a_double_reference_for_every_kernel_set) {
    // Head sizes 32 and 64 take the AVX2 kernel, 24 the plain one in every set; lengths
    // cover the kernels' edges: 1 token, partial and whole vectors of 8, 6-row blocks and
    // their tails.
    for (int64_t dh : {32, 64, 24}) {
        const int32_t n_head = 3;
        const int64_t d = dh * n_head;
        std::vector<g4r::text_span> texts;
        int32_t T = 0;
        for (int32_t len : {1, 2, 5, 8, 13, 16, 17, 31, 40}) {
            texts.push_back({T, len});
            T += len;
        }
        context c;
        ggml_tensor *qkv = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, 3 * d, T);
        fill_normal(qkv);
        g4r::attention_params ap;
        ap.texts = texts.data();
        ap.n_texts = static_cast<int32_t>(texts.size());
        ap.n_head = n_head;
        ap.scale = 1.0f / std::sqrt(static_cast<float>(dh));
        const std::vector<double> ref = attention_reference(qkv, d, n_head, texts, ap.scale);
        for (const g4r::kernel_set *k : g4r::kernel_sets()) {
            ggml_tensor *whole = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, d, T);
            ggml_tensor *split = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, d, T);
            whole->src[0] = split->src[0] = qkv;
            on_threads(1, [&](g4r::work_queue &q) { g4r::attention_with(*k, whole, ap, q); });
            on_threads(3, [&](g4r::work_queue &q) { g4r::attention_with(*k, split, ap, q); });
            const float err = max_rel_error(whole, ref);
            CHECK(err <= 2e-5f, "%s, head size %lld: error %g", g4r::kernel_set_name(*k),
                  static_cast<long long>(dh), err);
            CHECK(std::memcmp(whole->data, split->data, ggml_nbytes(whole)) == 0,
                  "%s, head size %lld: three threads' shares differ from one thread's whole",
                  g4r::kernel_set_name(*k), static_cast<long long>(dh));
        }
    }
}

TEST(encoder_gelu_and_add_norm_match_double_references_for_every_kernel_set) {
    for (int64_t n : {1536, 100}) {  // whole vectors, and a tail
        const int64_t rows = 7;
        context c;
        ggml_tensor *a = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, rows);
        ggml_tensor *bias = ggml_new_tensor_1d(c.ctx, GGML_TYPE_F32, n);
        ggml_tensor *res = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, rows);
        ggml_tensor *g = ggml_new_tensor_1d(c.ctx, GGML_TYPE_F32, n);
        ggml_tensor *beta = ggml_new_tensor_1d(c.ctx, GGML_TYPE_F32, n);
        fill_normal(a, 4.0f);  // GELU's input well into both tails
        fill_normal(bias, 0.5f);
        fill_normal(res);
        fill_normal(g);
        fill_normal(beta);
        const float eps = 1e-12f;
        const float *A = static_cast<const float *>(a->data), *B = static_cast<const float *>(bias->data);
        const float *R = static_cast<const float *>(res->data), *G = static_cast<const float *>(g->data);
        const float *Be = static_cast<const float *>(beta->data);
        std::vector<double> gelu_ref(static_cast<size_t>(n * rows)), norm_ref(gelu_ref.size());
        for (int64_t r = 0; r < rows; ++r) {
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < n; ++i) {
                const double u = double(A[r * n + i]) + B[i];
                gelu_ref[r * n + i] = 0.5 * u * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
                mean += u + R[r * n + i];
            }
            mean /= double(n);
            for (int64_t i = 0; i < n; ++i) var += std::pow(double(A[r * n + i]) + B[i] + R[r * n + i] - mean, 2);
            const double inv = 1.0 / std::sqrt(var / double(n) + eps);
            for (int64_t i = 0; i < n; ++i)
                norm_ref[r * n + i] = (double(A[r * n + i]) + B[i] + R[r * n + i] - mean) * inv * G[i] + Be[i];
        }
        for (const g4r::kernel_set *k : g4r::kernel_sets()) {
            ggml_tensor *y = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, rows);
            for (int ith = 0; ith < 2; ++ith) g4r::gelu_bias_with(*k, y, a, bias, ith, 2);
            const float gerr = max_rel_error(y, gelu_ref);
            CHECK(gerr <= 2e-6f, "%s GELU, n %lld: error %g", g4r::kernel_set_name(*k), static_cast<long long>(n), gerr);
            ggml_tensor *z = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, rows);
            z->src[0] = a;
            z->src[1] = bias;
            z->src[2] = res;
            z->src[3] = g;
            z->src[4] = beta;
            for (int ith = 0; ith < 2; ++ith) g4r::add_norm_with(*k, z, ith, 2, eps);
            const float nerr = max_rel_error(z, norm_ref);
            CHECK(nerr <= 2e-5f, "%s add+norm, n %lld: error %g", g4r::kernel_set_name(*k),
                  static_cast<long long>(n), nerr);
        }
    }
}

TEST(encoder_products_match_a_double_reference_and_do_not_depend_on_the_rows_beside) {
    // F16, F32 and Q8_0 weights stacked from two tensors (as Q, K and V are), 3 panels (AVX-512
    // takes 2 at once: a pair and a single); input widths with and without a multiple of the
    // unroll (Q8_0: whole blocks of 32 only); row counts covering the 6- and 12-row tiles,
    // their tails and more than one 256-row block. Every set with a product kernel gives the
    // same bits as the first (each output is one FMA chain over the inputs, in order).
    for (ggml_type type : {GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_Q8_0})
        for (int64_t k : {384, 37, 96}) {
            if (k % ggml_blck_size(type) != 0) continue;
            context c;
            ggml_tensor *w1 = ggml_new_tensor_2d(c.ctx, type, k, 16), *w2 = ggml_new_tensor_2d(c.ctx, type, k, 32);
            std::normal_distribution<float> dist(0.0f, 0.1f);
            std::vector<float> wf;  // the weights' values (as ggml reads them back), outputs stacked
            for (ggml_tensor *w : {w1, w2}) {
                std::vector<float> v(static_cast<size_t>(ggml_nelements(w)));
                for (float &f : v) f = dist(rng());
                ggml_quantize_chunk(type, v.data(), w->data, 0, w->ne[1], k, nullptr);
                if (type != GGML_TYPE_F32)
                    ggml_get_type_traits(type)->to_float(w->data, v.data(), ggml_nelements(w));
                wf.insert(wf.end(), v.begin(), v.end());
            }
            g4r::packed_weight pw;
            CHECK(g4r::pack_weight(pw, {w1, w2}), "a %s weight of 48 outputs packs", ggml_type_name(type));
            const int64_t n = 48;
            for (int64_t T : {1, 5, 6, 7, 12, 13, 25, 70, 300}) {
                ggml_tensor *x = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, k, T);
                fill_normal(x);
                const float *X = static_cast<const float *>(x->data);
                const ggml_tensor *first = nullptr;  // the first set's product
                const char *first_name = "";
                for (const g4r::kernel_set *ks : g4r::kernel_sets()) {
                    ggml_tensor *y = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, T);
                    y->src[0] = x;
                    std::atomic<bool> has{false};
                    on_threads(3, [&](g4r::work_queue &q) { has = g4r::product_with(*ks, y, pw, q); });
                    if (!has) continue;  // this set leaves products to ggml
                    const float *Y = static_cast<const float *>(y->data);
                    if (first == nullptr) {
                        first = y;
                        first_name = g4r::kernel_set_name(*ks);
                    }
                    CHECK(std::memcmp(first->data, Y, ggml_nbytes(y)) == 0,
                          "%s product, %s, k %lld, %lld rows: not the same bits as %s's", g4r::kernel_set_name(*ks),
                          ggml_type_name(type), static_cast<long long>(k), static_cast<long long>(T), first_name);
                    double worst = 0.0;
                    for (int64_t r = 0; r < T; ++r)
                        for (int64_t o = 0; o < n; ++o) {
                            double ref = 0.0, mag = 0.0;
                            for (int64_t j = 0; j < k; ++j) {
                                ref += double(X[r * k + j]) * wf[o * k + j];
                                mag += std::fabs(double(X[r * k + j]) * wf[o * k + j]);
                            }
                            worst = std::max(worst, std::fabs(Y[r * n + o] - ref) / std::max(mag, 1e-30));
                        }
                    CHECK(worst <= 1e-6, "%s product, %s, k %lld, %lld rows: error %g of the terms' magnitude",
                          g4r::kernel_set_name(*ks), ggml_type_name(type), static_cast<long long>(k),
                          static_cast<long long>(T), worst);
                    // each row alone gives the same bits as beside the others
                    ggml_tensor *x1 = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, k, 1);
                    ggml_tensor *y1 = ggml_new_tensor_2d(c.ctx, GGML_TYPE_F32, n, 1);
                    y1->src[0] = x1;
                    for (int64_t r = 0; r < T; ++r) {
                        std::memcpy(x1->data, X + r * k, sizeof(float) * k);
                        on_threads(1, [&](g4r::work_queue &q) { g4r::product_with(*ks, y1, pw, q); });
                        CHECK(std::memcmp(y1->data, Y + r * n, sizeof(float) * n) == 0,
                              "%s product, row %lld of %lld differs alone", g4r::kernel_set_name(*ks),
                              static_cast<long long>(r), static_cast<long long>(T));
                    }
                }
            }
        }
    // what the packer refuses: another quantized type, and widths that are not whole panels
    context c;
    g4r::packed_weight pw;
    CHECK(!g4r::pack_weight(pw, {ggml_new_tensor_2d(c.ctx, GGML_TYPE_Q4_0, 64, 16)}), "Q4_0 is not packed");
    CHECK(!g4r::pack_weight(pw, {ggml_new_tensor_2d(c.ctx, GGML_TYPE_F16, 64, 24)}), "24 outputs are not packed");
    CHECK(!g4r::pack_weight(pw, {ggml_new_tensor_2d(c.ctx, GGML_TYPE_F16, 64, 16),
                                 ggml_new_tensor_2d(c.ctx, GGML_TYPE_F16, 32, 16)}),
          "parts of different widths are not packed");
}
