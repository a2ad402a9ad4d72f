// g4r-kernels.h - the CPU operations of g4r's BERT encoder (g4r-encoder.cpp) that ggml has no
// fast form of, as ggml custom operations (ggml_custom_op_t / ggml_custom2_op_t): attention
// of each text with itself over packed rows, GELU with its bias, and the residual sum with its
// layer norm.
//
// Their kernels exist for AVX2 with FMA and for the baseline ISA; the set is chosen once from
// the running CPU's own flags (g4r_cpu_flags, cpuid), never from its name.
#ifndef G4R_KERNELS_H
#define G4R_KERNELS_H

#include "ggml.h"

#include <cstdint>
#include <vector>

namespace g4r {

// A text's rows in a packed [n_embd, T] activation: rows start .. start + len - 1.
struct text_span {
    int32_t start = 0;
    int32_t len = 0;
};

// What the attention operation reads besides its source.
struct attention_params {
    const text_span *texts = nullptr;
    int32_t n_texts = 0;
    int32_t n_head = 0;
    float scale = 1.0f;  // 1 / sqrt(head size)
};

// dst [n_embd, T] F32 = for each text and head, softmax(scale * Q K^T) V over the text's own
// rows, from dst->src[0] = Q, K and V side by side ([3 n_embd, T] F32, contiguous; a head is
// n_embd / n_head consecutive columns of each). `userdata` is an attention_params. Work is
// split by (text, head).
void attention_op(ggml_tensor *dst, int ith, int nth, void *userdata);

// dst [n, T] = LayerNorm(src0 + src1 + src2) * src3 + src4: a product [n, T], its bias [n],
// the residual [n, T], the norm's weight and bias [n] (all F32, contiguous). `userdata`
// points at the epsilon (a float). Rows are split between threads.
void add_norm_op(ggml_tensor *dst, int ith, int nth, void *userdata);

// dst = GELU(a + bias), a [n, T] F32 contiguous, bias [n] F32: the tanh form llama.cpp's
// ggml_gelu uses (Hendrycks & Gimpel 2016, eq. for GELU(x) ~ 0.5x(1 + tanh(sqrt(2/pi)(x +
// 0.044715x^3)))), written x * sigmoid(2 sqrt(2/pi)(x + 0.044715x^3)), in F32 (ggml_gelu
// rounds its input to F16 and looks the result up in a table).
void gelu_bias_op(ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith, int nth, void *userdata);

// The kernel sets this CPU runs, the chosen one first: "avx2" where it has AVX2 and FMA, then
// "baseline" (plain C++), always. The operations above use the first; the *_with forms below
// run a given set on one thread's share of the work (native/tests/test_kernels.cpp compares
// every set with a double-precision reference).
struct kernel_set;
std::vector<const kernel_set *> kernel_sets();
const char *kernel_set_name(const kernel_set &k);
void attention_with(const kernel_set &k, ggml_tensor *dst, int ith, int nth, const attention_params &ap);
void gelu_bias_with(const kernel_set &k, ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith,
                    int nth);
void add_norm_with(const kernel_set &k, ggml_tensor *dst, int ith, int nth, float eps);

}  // namespace g4r

#endif
