// g4r-model.cpp - a model handle: loading its weights and context, properties, metadata, threads.
#include "g4r-impl.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

namespace g4r {

namespace {

bool abort_cb(void *data) {
    auto *m = static_cast<g4r_model *>(data);
    return m->cancel.load(std::memory_order_relaxed);
}

int32_t default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    // ggml's own default is the number of physical cores; without a portable way to count
    // them here, use the logical CPUs, at most 8 (more threads rarely help one sequence).
    if (n == 0) n = 4;
    return static_cast<int32_t>(std::min(n, 8u));
}

}  // namespace

std::string meta_str(const llama_model *model, const std::string &key) {
    char buf[256];
    int32_t n = llama_model_meta_val_str(model, key.c_str(), buf, sizeof buf);
    if (n < 0) return {};
    if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, n);
    std::string big(static_cast<size_t>(n) + 1, '\0');
    llama_model_meta_val_str(model, key.c_str(), big.data(), big.size());
    big.resize(n);
    return big;
}

void require_ctx(g4r_model *m) {
    if (!m) fail(G4R_ERR_INVALID_ARGUMENT, "model handle is NULL");
    if (!m->ctx) fail(G4R_ERR_STATE, "the model was loaded vocab-only and has no context");
}

void require_model(g4r_model *m) {
    if (!m) fail(G4R_ERR_INVALID_ARGUMENT, "model handle is NULL");
}

}  // namespace g4r

using namespace g4r;

extern "C" {

g4r_model *g4r_model_load(const char *path, int32_t n_ctx, int32_t n_gpu_layers,
                          const char *device, int32_t n_threads, uint32_t flags, int32_t n_seq) {
    try {
        clear_error();
        ensure_backend();
        if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
            fail(G4R_ERR_NOT_FOUND, "no CPU backend: none of ggml's CPU modules (libggml-cpu*.so) beside the "
                                    "native library in '" + own_directory() + "' loads on this CPU (python -m "
                                    "gpt4all_rag.system names the flags each one needs)");
        if (!path) fail(G4R_ERR_INVALID_ARGUMENT, "path is NULL");
        if (n_ctx < 0) fail(G4R_ERR_INVALID_ARGUMENT, "n_ctx must be >= 0, got " + std::to_string(n_ctx));
        if (n_seq < 1 || n_seq > kMaxSeq)
            fail(G4R_ERR_INVALID_ARGUMENT, "n_seq must be in [1, " + std::to_string(kMaxSeq) + "], got " + std::to_string(n_seq));
        const uint32_t known = G4R_LOAD_VOCAB_ONLY | G4R_LOAD_FLASH_ATTN_ON | G4R_LOAD_FLASH_ATTN_OFF |
                               G4R_LOAD_LLAMA_ENCODER;
        if ((flags & ~known) != 0 ||
            ((flags & G4R_LOAD_FLASH_ATTN_ON) && (flags & G4R_LOAD_FLASH_ATTN_OFF)))
            fail(G4R_ERR_INVALID_ARGUMENT, "invalid load flags " + std::to_string(flags));
        FILE *f = std::fopen(path, "rb");
        if (!f) fail(G4R_ERR_IO, std::string("cannot open model file: ") + path + ": " + std::strerror(errno));
        char magic[4] = {0, 0, 0, 0};
        size_t got = std::fread(magic, 1, 4, f);
        std::fclose(f);
        if (got != 4 || std::memcmp(magic, "GGUF", 4) != 0)
            fail(G4R_ERR_MODEL_LOAD, std::string("not a GGUF file (bad magic): ") + path);

        auto m = std::make_unique<g4r_model>();
        m->n_threads = n_threads > 0 ? n_threads : default_threads();

        llama_model_params mp = llama_model_default_params();
        mp.vocab_only = (flags & G4R_LOAD_VOCAB_ONLY) != 0;
        ggml_backend_dev_t devs[2] = {nullptr, nullptr};
        std::string dev = device ? lower(device) : "";
        if (dev.empty() || dev == "cpu") {
            mp.devices = devs;  // empty list: CPU only
            mp.n_gpu_layers = 0;
        } else {
            auto gpus = gpu_devices();
            ggml_backend_dev_t chosen = nullptr;
            for (auto d : gpus) {
                if (dev == "gpu" || dev == backend_name_of(d) || dev == lower(ggml_backend_dev_name(d)) ||
                    dev == lower(ggml_backend_dev_description(d))) {
                    chosen = d;
                    break;
                }
            }
            if (!chosen) {
                std::string avail;
                for (auto d : gpus) avail += std::string(avail.empty() ? "" : ", ") + ggml_backend_dev_name(d) + " (" + ggml_backend_dev_description(d) + ")";
                fail(G4R_ERR_NOT_FOUND, "no GPU device matches '" + std::string(device) +
                                            "'; available: " + (avail.empty() ? "none (CPU-only build or no GPU)" : avail));
            }
            devs[0] = chosen;
            mp.devices = devs;
            mp.n_gpu_layers = n_gpu_layers;
            m->device = chosen;
        }

        t_last_log_error.clear();
        m->model = llama_model_load_from_file(path, mp);
        if (!m->model)
            fail(G4R_ERR_MODEL_LOAD, std::string("llama.cpp could not load ") + path +
                                         (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
        m->vocab = llama_model_get_vocab(m->model);
        if (mp.vocab_only) return m.release();

        std::string arch = meta_str(m->model, "general.architecture");
        std::string pooling = meta_str(m->model, arch + ".pooling_type");
        m->embedding = !pooling.empty() && pooling != "0";

        llama_context_params cp = llama_context_default_params();
        int32_t n_train = llama_model_n_ctx_train(m->model);
        cp.n_threads = m->n_threads;
        cp.n_threads_batch = m->n_threads;
        cp.abort_callback = abort_cb;
        cp.abort_callback_data = m.get();
        cp.no_perf = true;
        if (m->embedding) {
            int32_t win = n_ctx > 0 ? std::min(n_ctx, n_train) : n_train;
            m->embd_window = win;
            // At least a token per sequence the batch may carry: llama.cpp aborts on a batch
            // smaller than n_seq_max (its outputs buffer), so a window below kEmbedSeqMax
            // tokens still gets a batch of kEmbedSeqMax.
            cp.n_ctx = static_cast<uint32_t>(std::max(win * kEmbedWindowsPerBatch, kEmbedSeqMax));
            cp.n_batch = cp.n_ctx;
            cp.n_ubatch = cp.n_ctx;  // non-causal attention needs a sequence in one ubatch
            cp.n_seq_max = kEmbedSeqMax;
            cp.embeddings = true;
            // Flash attention skips the masked-out pairs of packed texts: 2.9x the short-text
            // throughput of plain attention, which computes every token pair of the ubatch.
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
        } else {
            uint32_t window = n_ctx > 0 ? static_cast<uint32_t>(n_ctx) : static_cast<uint32_t>(n_train);
            // Every sequence gets the whole window in a stream of its own (llama.cpp pads it
            // to a multiple of 256 cells when n_seq > 1): attention of one sequence reads only
            // its own cells, so parallel sequences do not slow each other's attention down.
            cp.n_ctx = window * static_cast<uint32_t>(n_seq);
            cp.n_seq_max = static_cast<uint32_t>(n_seq);
            cp.kv_unified = n_seq == 1;
            cp.n_batch = std::min<uint32_t>(cp.n_ctx, 2048);
            cp.n_ubatch = std::min<uint32_t>(cp.n_batch, 512);
            cp.swa_full = true;  // keep the whole window so a shared prefix can be reused
            // Plain attention for one sequence on the CPU without a BLAS backend while its
            // score matrix stays small (g4r.h has the rule and the figures). It
            // is not batch-invariant: a prompt evaluated in one ubatch and the same prompt
            // evaluated a few tokens at a time round differently (tinyBLAS
            // tiles vs one-row dot products), e.g. SmolLM2's first logits for "What is the
            // capital of France?" differ by up to 0.9 and flip a 0.13 near-tie between "The"
            // and "La". Flash attention is invariant only below 64 tokens per ubatch (its tiled
            // path starts there), so no choice makes long prompts split-independent;
            // g4r_model_ingest's saved logits keep the same prompt asked again exact.
            bool on_gpu = m->device != nullptr && n_gpu_layers != 0;
            double scores = 4.0 * cp.n_ubatch * window * std::max(1, llama_model_n_head(m->model));
            if (!on_gpu && n_seq == 1 && accel_devices().empty() && scores <= kPlainAttnMaxScoreBytes)
                cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        }
        if (flags & G4R_LOAD_FLASH_ATTN_ON) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        if (flags & G4R_LOAD_FLASH_ATTN_OFF) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        m->ctx = llama_init_from_model(m->model, cp);
        if (!m->ctx)
            fail(G4R_ERR_MODEL_LOAD, std::string("llama.cpp could not create a context for ") + path +
                                         (t_last_log_error.empty() ? "" : ": " + t_last_log_error));
        m->pooling = static_cast<int32_t>(llama_pooling_type(m->ctx));
        m->flash_attn = cp.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_DISABLED;
        if (m->embedding && m->pooling == LLAMA_POOLING_TYPE_NONE) m->embedding = false;
        // With a BLAS module loaded (an MKL build, opted into for its products) llama.cpp's
        // graph hands the products to BLAS, so g4r's encoder runs there only where its own
        // products take every weight (on Zen 3 they embed 1.1-1.85x as fast as MKL's in
        // llama.cpp's graph; README, "Intel MKL"), never where ggml's would multiply them.
        if (m->embedding && !(flags & G4R_LOAD_LLAMA_ENCODER) && m->device == nullptr) {
            std::string why;  // a model the encoder does not cover keeps llama.cpp's graph
            m->encoder = encoder_load(path, m->model, m->pooling, !accel_devices().empty(), &why);
        }
        if (!m->embedding) {
            m->n_ctx_seq = static_cast<int32_t>(llama_n_ctx_seq(m->ctx));
            m->seqs.resize(static_cast<size_t>(llama_n_seq_max(m->ctx)));
            m->step_batch = llama_batch_init(static_cast<int32_t>(llama_n_batch(m->ctx)), 0, 1);
            m->has_step_batch = true;
        }
        return m.release();
    } catch (const g4r_failure &e) {
        set_error(e.status, e.what());
    } catch (const std::bad_alloc &) {
        set_error(G4R_ERR_INTERNAL, "out of memory while loading the model");
    } catch (const std::exception &e) {
        set_error(G4R_ERR_MODEL_LOAD, std::string("cannot load model: ") + e.what());
    } catch (...) {
        set_error(G4R_ERR_INTERNAL, "unknown error while loading the model");
    }
    return nullptr;
}

void g4r_model_free(g4r_model *model) {
    try {
        delete model;
    } catch (...) {
    }
}

g4r_status g4r_model_info(g4r_model *model, int32_t property, int64_t *value) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!value) fail(G4R_ERR_INVALID_ARGUMENT, "value is NULL");
    switch (property) {
        case G4R_PROP_N_VOCAB: *value = llama_vocab_n_tokens(model->vocab); return G4R_OK;
        case G4R_PROP_N_CTX_TRAIN: *value = llama_model_n_ctx_train(model->model); return G4R_OK;
        case G4R_PROP_N_EMBD: *value = llama_model_n_embd_out(model->model); return G4R_OK;
        case G4R_PROP_ADD_BOS: *value = llama_vocab_get_add_bos(model->vocab); return G4R_OK;
        case G4R_PROP_ADD_EOS: *value = llama_vocab_get_add_eos(model->vocab); return G4R_OK;
        case G4R_PROP_N_PARAMS: *value = static_cast<int64_t>(llama_model_n_params(model->model)); return G4R_OK;
        default: break;
    }
    if (!model->ctx) fail(G4R_ERR_STATE, "the model was loaded vocab-only and has no context");
    // Fixed at load, or atomic: read without waiting for a running evaluation.
    switch (property) {
        case G4R_PROP_N_CTX: *value = model->embedding ? model->embd_window : model->n_ctx_seq; return G4R_OK;
        case G4R_PROP_IS_EMBEDDING: *value = model->embedding ? 1 : 0; return G4R_OK;
        case G4R_PROP_N_DECODED: *value = model->n_decoded.load(); return G4R_OK;
        case G4R_PROP_N_EVALS: *value = model->n_evals.load(); return G4R_OK;
        case G4R_PROP_FLASH_ATTN: *value = model->flash_attn ? 1 : 0; return G4R_OK;
        case G4R_PROP_N_BATCH:
            *value = model->encoder ? std::max(kEncoderEvalTokens, model->embd_window) : llama_n_batch(model->ctx);
            return G4R_OK;
        case G4R_PROP_ENCODER: *value = model->encoder ? 1 : 0; return G4R_OK;
        case G4R_PROP_N_SEQ_MAX:
            *value = model->encoder ? kEncoderEvalTokens
                                    : static_cast<int32_t>(llama_n_seq_max(model->ctx)) - (model->embedding ? 1 : 0);
            return G4R_OK;
        case G4R_PROP_POOLING: *value = model->pooling; return G4R_OK;
        default: break;
    }
    std::lock_guard<std::mutex> lock(model->mu);
    switch (property) {
        case G4R_PROP_N_PAST: {
            int64_t n = 0;
            for (const auto &s : model->seqs) n += static_cast<int64_t>(s.past.size());
            *value = n;
            return G4R_OK;
        }
        case G4R_PROP_N_THREADS: *value = model->n_threads; return G4R_OK;
        default: fail(G4R_ERR_INVALID_ARGUMENT, "unknown property " + std::to_string(property));
    }
    G4R_GUARD_END
}

g4r_status g4r_model_device(g4r_model *model, const char **backend, const char **device) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (backend) *backend = model->device ? backend_name_of(model->device) : "cpu";
    if (device) *device = model->device ? ggml_backend_dev_description(model->device) : nullptr;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_meta(g4r_model *model, const char *key, char *buf, size_t buf_size,
                          size_t *n_needed) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!key) fail(G4R_ERR_INVALID_ARGUMENT, "key is NULL");
    int32_t n = llama_model_meta_val_str(model->model, key, buf, buf_size);
    if (n < 0) fail(G4R_ERR_NOT_FOUND, std::string("no metadata key ") + key);
    if (n_needed) *n_needed = static_cast<size_t>(n);
    if (!buf || static_cast<size_t>(n) >= buf_size)
        fail(G4R_ERR_BUFFER_TOO_SMALL, "buffer too small for metadata value");
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_model_set_threads(g4r_model *model, int32_t n_threads) {
    G4R_GUARD_BEGIN
    clear_error();
    require_ctx(model);
    if (n_threads <= 0) fail(G4R_ERR_INVALID_ARGUMENT, "n_threads must be > 0, got " + std::to_string(n_threads));
    idle_lock lock(model);
    model->n_threads = n_threads;
    llama_set_n_threads(model->ctx, n_threads, n_threads);
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
