// g4r-encoder.cpp - the BERT encoder graph of g4r-encoder.h.
//
// Weights: the GGUF's tensor data, mapped read-only (the pages are shared with llama.cpp's own
// mapping of the same file), wrapped in a CPU buffer. F16, F32 and Q8_0 product weights are
// laid out in panels for g4r's own product where it runs (own_products), Q, K and V stacked
// into one; otherwise the Q, K and V matrices are copied side by side into one, and product
// weights are copied into ggml's repacked layouts where it has one for their type
// (prepare_products).
// Each evaluation builds a graph in a small context, allocates its activations with ggml's
// graph allocator and runs it on ggml's CPU backend with the model's thread count.
//
// A layer is 9 operations: the QKV product and its bias, attention, the output product, its
// bias + residual + layer norm, the up product, GELU with its bias, the down product, its bias
// + residual + layer norm. All but the products are ours (g4r-kernels.h), and the products too
// where the weights were packed for them. The texts' tokens are packed end to end, [n_embd, T]
// activations without padding, and attention reads each text's own rows only, so a text's
// vector does not depend on the texts evaluated beside it.
#include "g4r-encoder.h"
#include "g4r-impl.h"
#include "g4r-kernels.h"

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <vector>

#if defined(_WIN32)
#include <cstdio>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace g4r {

namespace {

// Nodes of one evaluation's graph: 8 for the embeddings, 9 per layer (BGE-large has 24).
constexpr int kEncoderGraphNodes = 1024;

struct layer_weights {
    ggml_tensor *wq = nullptr, *bq = nullptr, *wk = nullptr, *bk = nullptr, *wv = nullptr, *bv = nullptr;
    ggml_tensor *wqkv = nullptr, *bqkv = nullptr;  // Q, K and V side by side (prepare_products)
    // the products' weights laid out for g4r's own product (prepare_products); null: ggml's
    const packed_weight *pqkv = nullptr, *po = nullptr, *pup = nullptr, *pdown = nullptr;

    ggml_tensor *wo = nullptr, *bo = nullptr, *attn_norm = nullptr, *attn_norm_b = nullptr;
    ggml_tensor *up = nullptr, *up_b = nullptr, *down = nullptr, *down_b = nullptr;
    ggml_tensor *out_norm = nullptr, *out_norm_b = nullptr;
};

}  // namespace

struct encoder {
    int64_t n_embd = 0, n_head = 0, n_ff = 0, n_pos = 0, n_vocab = 0;
    float eps = 1e-12f;
    int32_t pooling = 0;  // LLAMA_POOLING_TYPE_MEAN or _CLS

    gguf_context *gguf = nullptr;
    ggml_context *weights = nullptr;  // the tensors' metadata; data lives in `buf`
    void *map = nullptr;
    size_t map_size = 0;
    std::vector<uint8_t> copy;  // the tensor data where mapping is not available
    ggml_backend_buffer_t buf = nullptr;
    // tensors built at load (prepare_products), one context and buffer per buffer type
    std::vector<std::pair<ggml_context *, ggml_backend_buffer_t>> owned;
    std::vector<std::unique_ptr<packed_weight>> packed;  // weights of g4r's own products
    ggml_backend_t backend = nullptr;
    ggml_backend_set_n_threads_t set_threads = nullptr;
    ggml_gallocr_t alloc = nullptr;
    std::vector<uint8_t> graph_meta;  // tensor and graph structs of one evaluation

    ggml_tensor *tok_embd = nullptr, *type_embd = nullptr, *pos_embd = nullptr;
    ggml_tensor *embd_norm = nullptr, *embd_norm_b = nullptr;
    std::vector<layer_weights> layers;

    ~encoder() {
        if (alloc) ggml_gallocr_free(alloc);
        if (backend) ggml_backend_free(backend);
        if (buf) ggml_backend_buffer_free(buf);
        for (auto &o : owned) {
            if (o.second) ggml_backend_buffer_free(o.second);
            ggml_free(o.first);
        }
        if (weights) ggml_free(weights);
        if (gguf) gguf_free(gguf);
#if !defined(_WIN32)
        if (map) munmap(map, map_size);
#endif
    }
};

void encoder_deleter::operator()(encoder *e) const { delete e; }

namespace {

// The tensor `name` with the shape {ne0, ne1} (ne1 = 0: a vector); null if absent and not
// `required`. A tensor of another shape, or a vector that is not F32, makes the model
// unsupported (`why`).
ggml_tensor *find(encoder &e, const std::string &name, int64_t ne0, int64_t ne1, bool required, std::string *why) {
    ggml_tensor *t = ggml_get_tensor(e.weights, name.c_str());
    if (!t) {
        if (required && why->empty()) *why = "no tensor " + name;
        return nullptr;
    }
    bool vector = ne1 == 0;
    bool ok = t->ne[0] == ne0 && (vector ? t->ne[1] == 1 : t->ne[1] == ne1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (vector && t->type != GGML_TYPE_F32) ok = false;
    if (!ok && why->empty()) *why = "tensor " + name + " has an unexpected shape or type";
    return ok ? t : nullptr;
}

bool map_data(encoder &e, const char *path, size_t data_offset, std::string *why) {
    size_t need = 0;
    for (ggml_tensor *t = ggml_get_first_tensor(e.weights); t; t = ggml_get_next_tensor(e.weights, t)) {
        int64_t id = gguf_find_tensor(e.gguf, ggml_get_name(t));
        need = std::max(need, gguf_get_tensor_offset(e.gguf, id) + ggml_nbytes(t));
    }
    uint8_t *base = nullptr;
#if defined(_WIN32)
    FILE *f = std::fopen(path, "rb");
    if (!f) return *why = "cannot open the model file", false;
    e.copy.resize(need);
    bool read = _fseeki64(f, static_cast<long long>(data_offset), SEEK_SET) == 0 &&
                std::fread(e.copy.data(), 1, need, f) == need;
    std::fclose(f);
    if (!read) return *why = "the model file is shorter than its tensors", false;
    base = e.copy.data();
#else
    int fd = open(path, O_RDONLY);
    if (fd < 0) return *why = "cannot open the model file", false;
    struct stat st {};
    if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < data_offset + need) {
        close(fd);
        return *why = "the model file is shorter than its tensors", false;
    }
    e.map_size = static_cast<size_t>(st.st_size);
    void *m = mmap(nullptr, e.map_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return *why = "cannot map the model file", false;
    e.map = m;
    base = static_cast<uint8_t *>(m) + data_offset;
#endif
    e.buf = ggml_backend_cpu_buffer_from_ptr(base, need);
    if (!e.buf) return *why = "cannot wrap the weights in a CPU buffer", false;
    for (ggml_tensor *t = ggml_get_first_tensor(e.weights); t; t = ggml_get_next_tensor(e.weights, t)) {
        int64_t id = gguf_find_tensor(e.gguf, ggml_get_name(t));
        if (ggml_backend_tensor_alloc(e.buf, t, base + gguf_get_tensor_offset(e.gguf, id)) != GGML_STATUS_SUCCESS)
            return *why = std::string("cannot place tensor ") + ggml_get_name(t), false;
    }
    return true;
}

// Whether the CPU device multiplies a weight of `type`, {ne0, ne1} held in a buffer of `buft`
// (llama.cpp's loader asks the same way, weight_buft_supported: a dummy product, the weight in
// a zero-size buffer of that type).
bool multiplies(encoder &e, ggml_backend_buffer_type_t buft, ggml_type type, int64_t ne0, int64_t ne1) {
    ggml_init_params ip{ggml_tensor_overhead() * 4, nullptr, /*no_alloc=*/true};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(ip), ggml_free);
    if (!ctx) return false;
    ggml_tensor *w = ggml_new_tensor_2d(ctx.get(), type, ne0, ne1);
    ggml_tensor *op = ggml_mul_mat(ctx.get(), w, ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, ne0, 512));
    w->buffer = ggml_backend_buft_alloc_buffer(buft, 0);
    const bool ok = w->buffer && ggml_backend_dev_supports_op(ggml_backend_get_device(e.backend), op);
    if (w->buffer) ggml_backend_buffer_free(w->buffer);
    return ok;
}

// Where a product weight goes: the first of the CPU device's extra buffer types (ggml's
// repacked layouts, e.g. Q8_0 interleaved for AVX2) that multiplies it, else the plain CPU
// buffer type; null when the CPU multiplies it in neither (a file of odd tensor types, which
// the encoder leaves to llama.cpp's graph).
ggml_backend_buffer_type_t product_buft(encoder &e, ggml_type type, int64_t ne0, int64_t ne1) {
    ggml_backend_dev_t dev = ggml_backend_get_device(e.backend);
    auto get_extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts"));
    for (ggml_backend_buffer_type_t *b = get_extra ? get_extra(dev) : nullptr; b && *b; ++b)
        if (multiplies(e, *b, type, ne0, ne1)) return *b;
    ggml_backend_buffer_type_t plain = ggml_backend_get_default_buffer_type(e.backend);
    return multiplies(e, plain, type, ne0, ne1) ? plain : nullptr;
}

// The product weights as the graph uses them: Q, K and V side by side in one [n_embd,
// 3 n_embd] matrix (biases likewise, zero where the file has none), so each layer starts with
// one product instead of three; and every product weight in a repacked layout where ggml has
// one for its type (product_buft), as llama.cpp would hold it. A weight without one keeps its
// mapped data. With `own_only`, a layer whose weights g4r's product does not take fails.
bool prepare_products(encoder &e, bool own_only, std::string *why) {
    const int64_t d = e.n_embd;
    const ggml_backend_buffer_type_t plain = ggml_backend_get_default_buffer_type(e.backend);
    std::vector<std::pair<ggml_backend_buffer_type_t, ggml_context *>> ctxs;
    auto ctx_for = [&](ggml_backend_buffer_type_t buft) -> ggml_context * {
        for (auto &c : ctxs)
            if (c.first == buft) return c.second;
        ggml_init_params ip{ggml_tensor_overhead() * 5 * (e.layers.size() + 1), nullptr, /*no_alloc=*/true};
        ggml_context *ctx = ggml_init(ip);
        if (ctx) ctxs.emplace_back(buft, ctx);
        return ctx;
    };
    // F16, F32 and Q8_0 weights go to g4r's own product where it runs (own_products) and the
    // widths are whole panels (BERT's are): Q, K and V stacked into one packed weight, the rest
    // packed alone; bqkv is built either way.
    const bool own = own_products() && d % 16 == 0 && e.n_ff % 16 == 0;
    auto pack = [&e](std::vector<const ggml_tensor *> parts) -> const packed_weight * {
        auto pw = std::make_unique<packed_weight>();
        if (!pack_weight(*pw, parts)) return nullptr;
        e.packed.push_back(std::move(pw));
        return e.packed.back().get();
    };
    struct copy {
        ggml_tensor *dst;
        std::vector<const ggml_tensor *> parts;  // laid end to end, absent parts as zeros
        size_t part_bytes;
    };
    std::vector<copy> copies;
    bool ok = true;
    for (layer_weights &l : e.layers) {
        if (l.wk->type != l.wq->type || l.wv->type != l.wq->type) {
            *why = "Q, K and V of different types";
            ok = false;
            break;
        }
        const ggml_type t = l.wq->type;
        if (own && (t == GGML_TYPE_F16 || t == GGML_TYPE_F32 || t == GGML_TYPE_Q8_0) && l.wo->type == t &&
            l.up->type == t && l.down->type == t) {
            l.pqkv = pack({l.wq, l.wk, l.wv});
            l.po = pack({l.wo});
            l.pup = pack({l.up});
            l.pdown = pack({l.down});
            ggml_context *bctx = ctx_for(plain);
            if (!l.pqkv || !l.po || !l.pup || !l.pdown || !bctx) {
                *why = "cannot lay out the product weights";
                ok = false;
                break;
            }
            l.bqkv = ggml_new_tensor_1d(bctx, GGML_TYPE_F32, 3 * d);
            copies.push_back({l.bqkv, {l.bq, l.bk, l.bv}, sizeof(float) * static_cast<size_t>(d)});
            continue;
        }
        if (own_only) {
            *why = "product weights that g4r's own product does not take here";
            ok = false;
            break;
        }
        ggml_backend_buffer_type_t b = product_buft(e, l.wq->type, d, 3 * d);
        ggml_tensor **others[3] = {&l.wo, &l.up, &l.down};
        ggml_backend_buffer_type_t other_b[3];
        bool multiplied = b != nullptr;
        for (int i = 0; i < 3; ++i) {
            other_b[i] = product_buft(e, (*others[i])->type, (*others[i])->ne[0], (*others[i])->ne[1]);
            multiplied = multiplied && other_b[i] != nullptr;
        }
        if (!multiplied) {
            *why = "product weights of a type the CPU backend does not multiply";
            ok = false;
            break;
        }
        ggml_context *wctx = ctx_for(b), *bctx = ctx_for(plain);
        if (!wctx || !bctx) {
            *why = "cannot create a context for the product weights";
            ok = false;
            break;
        }
        l.wqkv = ggml_new_tensor_2d(wctx, l.wq->type, d, 3 * d);
        copies.push_back({l.wqkv, {l.wq, l.wk, l.wv}, ggml_nbytes(l.wq)});
        l.bqkv = ggml_new_tensor_1d(bctx, GGML_TYPE_F32, 3 * d);
        copies.push_back({l.bqkv, {l.bq, l.bk, l.bv}, sizeof(float) * static_cast<size_t>(d)});
        for (int i = 0; i < 3; ++i) {
            ggml_tensor *&w = *others[i];
            ggml_context *rctx = other_b[i] == plain ? nullptr : ctx_for(other_b[i]);
            if (!rctx) continue;  // no repacked layout: the mapped tensor
            ggml_tensor *t = ggml_new_tensor_2d(rctx, w->type, w->ne[0], w->ne[1]);
            copies.push_back({t, {w}, ggml_nbytes(w)});
            w = t;
        }
    }
    for (auto &c : ctxs) {
        ggml_backend_buffer_t buf = ok ? ggml_backend_alloc_ctx_tensors_from_buft(c.second, c.first) : nullptr;
        e.owned.emplace_back(c.second, buf);
        if (!buf && ok) {
            *why = "cannot allocate the product weights";
            ok = false;
        }
    }
    if (!ok) return false;
    std::vector<uint8_t> data;
    for (const copy &c : copies) {  // one whole write per tensor: a repacking buffer takes no parts
        data.assign(c.part_bytes * c.parts.size(), 0);
        for (size_t i = 0; i < c.parts.size(); ++i)
            if (c.parts[i]) std::memcpy(data.data() + i * c.part_bytes, c.parts[i]->data, c.part_bytes);
        ggml_backend_tensor_set(c.dst, data.data(), 0, data.size());
    }
    return true;
}

}  // namespace

encoder_ptr encoder_load(const char *path, const llama_model *model, int32_t pooling, bool own_products_only,
                         std::string *why) {
    why->clear();
    if (meta_str(model, "general.architecture") != "bert") return *why = "not a BERT model", nullptr;
    if (pooling != LLAMA_POOLING_TYPE_MEAN && pooling != LLAMA_POOLING_TYPE_CLS)
        return *why = "pooling other than mean or CLS", nullptr;
    encoder_ptr e(new encoder);
    e->pooling = pooling;
    e->n_embd = llama_model_n_embd(model);
    e->n_head = llama_model_n_head(model);
    e->n_pos = llama_model_n_ctx_train(model);
    e->n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::string eps = meta_str(model, "bert.attention.layer_norm_epsilon");
    if (!eps.empty()) e->eps = std::strtof(eps.c_str(), nullptr);
    if (e->n_head <= 0 || e->n_embd % e->n_head != 0) return *why = "heads do not divide the width", nullptr;

    gguf_init_params gp{/*no_alloc=*/true, /*ctx=*/&e->weights};
    e->gguf = gguf_init_from_file(path, gp);
    if (!e->gguf || !e->weights) return *why = "cannot read the GGUF's tensor table", nullptr;

    const int64_t d = e->n_embd;
    e->tok_embd = find(*e, "token_embd.weight", d, e->n_vocab, true, why);
    e->pos_embd = find(*e, "position_embd.weight", d, e->n_pos, true, why);
    e->type_embd = ggml_get_tensor(e->weights, "token_types.weight");
    if (e->type_embd && (e->type_embd->type != GGML_TYPE_F32 || e->type_embd->ne[0] != d))
        *why = "token_types.weight is not F32 of the model's width";
    e->embd_norm = find(*e, "token_embd_norm.weight", d, 0, true, why);
    e->embd_norm_b = find(*e, "token_embd_norm.bias", d, 0, true, why);
    if (ggml_get_tensor(e->weights, "blk.0.attn_qkv.weight")) *why = "a fused QKV tensor (attn_qkv)";
    const int32_t n_layer = llama_model_n_layer(model);
    ggml_tensor *up0 = ggml_get_tensor(e->weights, "blk.0.ffn_up.weight");
    e->n_ff = up0 ? up0->ne[1] : 0;
    for (int32_t il = 0; il < n_layer && why->empty(); ++il) {
        layer_weights l;
        auto blk = [il](const char *name) { return "blk." + std::to_string(il) + "." + name; };
        l.wq = find(*e, blk("attn_q.weight"), d, d, true, why);
        l.bq = find(*e, blk("attn_q.bias"), d, 0, false, why);
        l.wk = find(*e, blk("attn_k.weight"), d, d, true, why);
        l.bk = find(*e, blk("attn_k.bias"), d, 0, false, why);
        l.wv = find(*e, blk("attn_v.weight"), d, d, true, why);
        l.bv = find(*e, blk("attn_v.bias"), d, 0, false, why);
        l.wo = find(*e, blk("attn_output.weight"), d, d, true, why);
        l.bo = find(*e, blk("attn_output.bias"), d, 0, true, why);
        l.attn_norm = find(*e, blk("attn_output_norm.weight"), d, 0, true, why);
        l.attn_norm_b = find(*e, blk("attn_output_norm.bias"), d, 0, true, why);
        l.up = find(*e, blk("ffn_up.weight"), d, e->n_ff, true, why);
        l.up_b = find(*e, blk("ffn_up.bias"), e->n_ff, 0, true, why);
        l.down = find(*e, blk("ffn_down.weight"), e->n_ff, d, true, why);
        l.down_b = find(*e, blk("ffn_down.bias"), d, 0, true, why);
        l.out_norm = find(*e, blk("layer_output_norm.weight"), d, 0, true, why);
        l.out_norm_b = find(*e, blk("layer_output_norm.bias"), d, 0, true, why);
        e->layers.push_back(l);
    }
    if (!why->empty()) return nullptr;
    if (!map_data(*e, path, gguf_get_data_offset(e->gguf), why)) return nullptr;

    e->backend = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (!e->backend) return *why = "no CPU backend", nullptr;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(e->backend));
    e->set_threads = reinterpret_cast<ggml_backend_set_n_threads_t>(
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"));
    if (!prepare_products(*e, own_products_only, why)) return nullptr;
    e->alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(e->backend));
    if (!e->alloc) return *why = "cannot create the graph allocator", nullptr;
    return e;
}

namespace {

// One evaluation: a group of texts, packed.
struct evaluation {
    std::vector<int32_t> tokens, positions;  // [T]
    std::vector<text_span> texts;            // per text of the group
    attention_params attention;              // points into `texts`
    // the graph's custom operation nodes, each with its queue of work (deques: nodes stay put)
    std::deque<product_node> products;
    std::deque<attention_node> attentions;
};

ggml_tensor *norm(ggml_context *ctx, ggml_tensor *x, ggml_tensor *w, ggml_tensor *b, float eps) {
    return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), w), b);
}

// LayerNorm(y + bias + residual) * w + b in one operation of ours (g4r-kernels.h).
ggml_tensor *add_norm(ggml_context *ctx, ggml_tensor *y, ggml_tensor *bias, ggml_tensor *residual, ggml_tensor *w,
                      ggml_tensor *b, float *eps) {
    ggml_tensor *args[5] = {y, bias, residual, w, b};
    return ggml_custom_4d(ctx, GGML_TYPE_F32, y->ne[0], y->ne[1], 1, 1, args, 5, add_norm_op, GGML_N_TASKS_MAX, eps);
}

// w x: g4r's own product where the weight is packed for it (prepare_products), else ggml's.
ggml_tensor *product(ggml_context *ctx, evaluation &ev, ggml_tensor *w, const packed_weight *pw, ggml_tensor *x) {
    if (!pw) return ggml_mul_mat(ctx, w, x);
    product_node &node = ev.products.emplace_back();
    node.weight = pw;
    return ggml_custom_4d(ctx, GGML_TYPE_F32, pw->n, x->ne[1], 1, 1, &x, 1, product_op, GGML_N_TASKS_MAX, &node);
}

// The graph of one evaluation; inputs: token ids and positions [T]; output: hidden states
// [n_embd, T].
ggml_cgraph *build(encoder &e, ggml_context *ctx, evaluation &ev, ggml_tensor **inp_tokens,
                   ggml_tensor **inp_pos, ggml_tensor **out) {
    const int64_t T = static_cast<int64_t>(ev.tokens.size());
    const int64_t d = e.n_embd;
    ggml_cgraph *gf = ggml_new_graph_custom(ctx, kEncoderGraphNodes, false);
    *inp_tokens = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
    *inp_pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
    ggml_set_input(*inp_tokens);
    ggml_set_input(*inp_pos);

    ggml_tensor *x = ggml_get_rows(ctx, e.tok_embd, *inp_tokens);
    if (e.type_embd) x = ggml_add(ctx, x, ggml_view_1d(ctx, e.type_embd, d, 0));  // token type 0
    x = ggml_add(ctx, x, ggml_get_rows(ctx, e.pos_embd, *inp_pos));
    x = norm(ctx, x, e.embd_norm, e.embd_norm_b, e.eps);

    ev.attention.texts = ev.texts.data();
    ev.attention.n_texts = static_cast<int32_t>(ev.texts.size());
    ev.attention.n_head = static_cast<int32_t>(e.n_head);
    ev.attention.scale = 1.0f / std::sqrt(static_cast<float>(d / e.n_head));
    ev.products.clear();
    ev.attentions.clear();
    for (layer_weights &l : e.layers) {
        ggml_tensor *qkv = ggml_add(ctx, product(ctx, ev, l.wqkv, l.pqkv, x), l.bqkv);  // [3 d, T]
        attention_node &a = ev.attentions.emplace_back();
        a.params = &ev.attention;
        ggml_tensor *att = ggml_custom_4d(ctx, GGML_TYPE_F32, d, T, 1, 1, &qkv, 1, attention_op, GGML_N_TASKS_MAX, &a);
        x = add_norm(ctx, product(ctx, ev, l.wo, l.po, att), l.bo, x, l.attn_norm, l.attn_norm_b, &e.eps);
        ggml_tensor *h = ggml_map_custom2(ctx, product(ctx, ev, l.up, l.pup, x), l.up_b, gelu_bias_op,
                                          GGML_N_TASKS_MAX, nullptr);
        x = add_norm(ctx, product(ctx, ev, l.down, l.pdown, h), l.down_b, x, l.out_norm, l.out_norm_b, &e.eps);
    }
    ggml_set_output(x);
    ggml_build_forward_expand(gf, x);
    *out = x;
    return gf;
}

// Fill `ev` for the texts `group` (indexes into the call's sequences).
void plan(evaluation &ev, const std::vector<int32_t> &group, const int32_t *tokens,
          const std::vector<size_t> &offsets, const int32_t *seq_lens) {
    ev.tokens.clear();
    ev.positions.clear();
    ev.texts.clear();
    for (int32_t s : group) {
        const int32_t n = seq_lens[s];
        ev.texts.push_back({static_cast<int32_t>(ev.tokens.size()), n});
        for (int32_t j = 0; j < n; ++j) {
            ev.tokens.push_back(tokens[offsets[s] + j]);
            ev.positions.push_back(j);
        }
    }
}

}  // namespace

bool encoder_embed(encoder &e, const int32_t *tokens, const int32_t *seq_lens, int32_t n_seqs,
                   float *out, int32_t n_threads, const std::atomic<bool> &cancel,
                   std::atomic<int64_t> &n_evals) {
    std::vector<size_t> offsets(static_cast<size_t>(n_seqs) + 1, 0);
    for (int32_t i = 0; i < n_seqs; ++i) offsets[i + 1] = offsets[i] + static_cast<size_t>(seq_lens[i]);
    if (e.set_threads) e.set_threads(e.backend, n_threads);
    const size_t meta = ggml_tensor_overhead() * kEncoderGraphNodes + ggml_graph_overhead_custom(kEncoderGraphNodes, false);
    if (e.graph_meta.size() < meta) e.graph_meta.resize(meta);
    evaluation ev;
    std::vector<float> hidden;
    const int64_t d = e.n_embd;
    int32_t next = 0;
    while (next < n_seqs) {
        if (cancel.load(std::memory_order_relaxed)) return false;
        std::vector<int32_t> group;
        int32_t total = 0;
        while (next < n_seqs && (group.empty() || total + seq_lens[next] <= kEncoderEvalTokens)) {
            total += seq_lens[next];
            group.push_back(next++);
        }
        plan(ev, group, tokens, offsets, seq_lens);

        ggml_init_params ip{e.graph_meta.size(), e.graph_meta.data(), /*no_alloc=*/true};
        std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(ip), ggml_free);
        if (!ctx) fail(G4R_ERR_INTERNAL, "cannot create the encoder's graph context");
        ggml_tensor *inp_tokens, *inp_pos, *x;
        ggml_cgraph *gf = build(e, ctx.get(), ev, &inp_tokens, &inp_pos, &x);
        if (!ggml_gallocr_alloc_graph(e.alloc, gf)) fail(G4R_ERR_INTERNAL, "out of memory for the encoder's activations");
        ggml_backend_tensor_set(inp_tokens, ev.tokens.data(), 0, ggml_nbytes(inp_tokens));
        ggml_backend_tensor_set(inp_pos, ev.positions.data(), 0, ggml_nbytes(inp_pos));
        if (ggml_backend_graph_compute(e.backend, gf) != GGML_STATUS_SUCCESS)
            fail(G4R_ERR_DECODE, "the encoder's graph failed to compute");
        ++n_evals;
        hidden.resize(static_cast<size_t>(ggml_nelements(x)));
        ggml_backend_tensor_get(x, hidden.data(), 0, ggml_nbytes(x));

        for (size_t g = 0; g < group.size(); ++g) {
            float *dst = out + static_cast<size_t>(group[g]) * d;
            const float *rows = hidden.data() + static_cast<size_t>(ev.texts[g].start) * d;
            if (e.pooling == LLAMA_POOLING_TYPE_CLS) {
                std::memcpy(dst, rows, sizeof(float) * d);
                continue;
            }
            const int32_t len = ev.texts[g].len;
            std::fill(dst, dst + d, 0.0f);
            for (int32_t r = 0; r < len; ++r)
                for (int64_t c = 0; c < d; ++c) dst[c] += rows[static_cast<size_t>(r) * d + c];
            const float inv = 1.0f / static_cast<float>(len);
            for (int64_t c = 0; c < d; ++c) dst[c] *= inv;
        }
    }
    return true;
}

}  // namespace g4r
