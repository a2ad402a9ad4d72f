// g4r-kernels.h - the CPU operations of g4r's BERT encoder (g4r-encoder.cpp) that ggml has no
// fast form of, as ggml custom operations (ggml_custom_op_t / ggml_custom2_op_t): attention
// of each text with itself over packed rows, GELU with its bias, the residual sum with its
// layer norm, and the products with F16, F32 or Q8_0 weights laid out in panels at load.
//
// Their kernels exist for AVX-512F (the products; its other kernels are AVX2's), for AVX2 with
// FMA and F16C, and for the baseline ISA (which leaves the products to ggml); the set is chosen
// once from the running CPU's own flags (g4r_cpu_flags, cpuid), never from its name.
#ifndef G4R_KERNELS_H
#define G4R_KERNELS_H

#include "ggml.h"

#include <atomic>
#include <cstdint>
#include <vector>

namespace g4r {

// A text's rows in a packed [n_embd, T] activation: rows start .. start + len - 1.
struct text_span {
    int32_t start = 0;
    int32_t len = 0;
};

// The units of one operation's work in one evaluation, handed to its threads as they ask
// (take: 0, 1, 2, ... and on past the last unit), so a core that runs slower than the others
// (another process on it, a lower clock) takes fewer units instead of the others waiting for
// it at ggml's barrier after the operation (a static split left 8 % of the encoder's samples
// in that barrier on a 2-core Zen 3, this 1 %). Which thread computes a unit never changes its
// result. One per operation node of an evaluation's graph, built with it.
struct work_queue {
    std::atomic<int64_t> next{0};
    int64_t take() { return next.fetch_add(1, std::memory_order_relaxed); }
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
// n_embd / n_head consecutive columns of each). `userdata` is an attention_node. A unit of
// work is one head of one text.
struct attention_node {
    const attention_params *params = nullptr;
    work_queue work;
};
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

// A product weight, n outputs of k inputs (a ggml [k, n] matrix, rows stacked from one or more
// tensors), laid out for product_op: panels of 16 outputs, each k x 16 (input-major), in the
// weights' own type, so values are unchanged. F16 and F32 panels hold the values; a Q8_0 panel
// holds, per block of 32 inputs, the 16 outputs' scales (F32, widened from the block's F16)
// and then the 32 x 16 int8 quants. product_op widens an F16 or Q8_0 panel to F32 per unit of
// work (a Q8_0 weight is q * d, as ggml dequantizes it). The layout is the packed B operand of
// BLIS-style GEMM (Goto & van de Geijn 2008): a kernel reads one input's 16 weights with two
// vector loads.
struct packed_weight {
    int64_t k = 0, n = 0;
    ggml_type type = GGML_TYPE_F16;
    size_t panel_bytes = 0;
    std::vector<uint8_t> storage;  // the panels, from data
    const uint8_t *data = nullptr;  // 64-byte aligned, in storage
    const uint8_t *panel(int64_t p) const { return data + p * panel_bytes; }
};

// Lay out `parts` (contiguous [k, n_i] tensors of one type, F16, F32 or Q8_0) stacked along n;
// false (pw untouched) for another type, mismatched k, or a total n that is not a multiple of
// 16.
bool pack_weight(packed_weight &pw, const std::vector<const ggml_tensor *> &parts);

// dst [n, T] F32 = W x: W a packed_weight, x = dst->src[0] ([k, T] F32, contiguous).
// `userdata` is a product_node. A unit of work is one panel (two with AVX-512) for a block of
// rows.
struct product_node {
    const packed_weight *weight = nullptr;
    work_queue work;
};
void product_op(ggml_tensor *dst, int ith, int nth, void *userdata);

// Whether the encoder multiplies F16, F32 and Q8_0 weights with product_op rather than ggml's
// mul_mat: where the chosen kernel set has a product kernel and the CPU has no AVX-512 (the
// "avx512" set's products against ggml's AVX-512 ones are not measured yet, so ggml keeps
// them there), unless GPT4ALL_RAG_ENCODER_PRODUCTS ("g4r" or "ggml") says which.
bool own_products();

// The kernel sets this CPU runs, best first: "avx512" where it has AVX-512F, AVX2, FMA and
// F16C; "avx2" where it has the last three; "baseline" (plain C++), always. The operations
// above use the first, or the one GPT4ALL_RAG_ENCODER_KERNELS names; the *_with forms below
// run a given set, on one thread's share of the work (gelu, add_norm) or on the units it takes
// from `work` (native/tests/test_kernels.cpp compares every set with a double-precision
// reference, and the sets' products with each other).
struct kernel_set;
std::vector<const kernel_set *> kernel_sets();
const char *kernel_set_name(const kernel_set &k);
void attention_with(const kernel_set &k, ggml_tensor *dst, const attention_params &ap, work_queue &work);
void gelu_bias_with(const kernel_set &k, ggml_tensor *dst, const ggml_tensor *a, const ggml_tensor *bias, int ith,
                    int nth);
void add_norm_with(const kernel_set &k, ggml_tensor *dst, int ith, int nth, float eps);
// false (dst untouched) where the set has no product kernel
bool product_with(const kernel_set &k, ggml_tensor *dst, const packed_weight &w, work_queue &work);

}  // namespace g4r

#endif
