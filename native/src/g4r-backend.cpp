// g4r-backend.cpp - ggml's backends and devices: loading the modules, GPUs, system info.
#include "g4r-impl.h"

#include "log.h"  // llama.cpp common: its logger (silenced, see ensure_backend)

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

#include <cctype>

namespace g4r {

namespace {

std::once_flag g_backend_once;

bool is_gpu(ggml_backend_dev_t dev) {
    auto t = ggml_backend_dev_type(dev);
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

bool is_accel(ggml_backend_dev_t dev) { return ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_ACCEL; }

// The registered devices that `keep` selects, in registry order.
std::vector<ggml_backend_dev_t> devices_where(bool (*keep)(ggml_backend_dev_t)) {
    std::vector<ggml_backend_dev_t> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (keep(d)) out.push_back(d);
    }
    return out;
}

}  // namespace

std::string own_directory() {
#if defined(_WIN32)
    HMODULE self = nullptr;
    char path[MAX_PATH];
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            reinterpret_cast<LPCSTR>(&own_directory), &self))
        return {};
    DWORD n = GetModuleFileNameA(self, path, MAX_PATH);
    std::string p(path, n);
    size_t cut = p.find_last_of("\\/");
#else
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void *>(&own_directory), &info) || !info.dli_fname) return {};
    std::string p(info.dli_fname);
    size_t cut = p.find_last_of('/');
#endif
    return cut == std::string::npos ? std::string(".") : p.substr(0, cut);
}

void ensure_backend() {
    std::call_once(g_backend_once, [] {
        llama_log_set(log_trampoline, nullptr);
#ifdef GGML_BACKEND_DL
        // ggml's backends are modules beside this library: for the CPU, the variant whose
        // instruction sets the running CPU has (ggml scores each by cpuid); GPU backends that
        // were built. GGML_BACKEND_PATH names one more, as in llama.cpp's tools.
        std::string dir = own_directory();
        ggml_backend_load_all_from_path(dir.empty() ? nullptr : dir.c_str());
#endif
        llama_backend_init();
        // llama.cpp's common/ logs through a worker thread that writes to stderr and has no
        // callback; the library never prints, so that logger is silenced (its failures reach
        // us as exceptions, which become statuses and messages).
        common_log_set_verbosity_thold(-1);
    });
}

std::string lower(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<ggml_backend_dev_t> gpu_devices() { return devices_where(is_gpu); }

// llama.cpp adds accelerator backends to every context and hands them the matrix products of
// 32 or more rows.
std::vector<ggml_backend_dev_t> accel_devices() { return devices_where(is_accel); }

// Static storage for lower-cased backend names (ggml's registry names are static too).
const char *backend_name_of(ggml_backend_dev_t dev) {
    static std::mutex mu;
    static std::vector<std::unique_ptr<std::string>> names;
    std::string n = lower(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
    std::lock_guard<std::mutex> lock(mu);
    for (auto &p : names)
        if (*p == n) return p->c_str();
    names.push_back(std::make_unique<std::string>(n));
    return names.back()->c_str();
}

}  // namespace g4r

using namespace g4r;

extern "C" {

const char *g4r_system_info(void) {
    try {
        ensure_backend();
        // llama.cpp lists the CPU backend's features; accelerators (a BLAS backend) are named
        // after them, since the scheduler hands them the large matrix products.
        static const std::string info = [] {
            std::string s = llama_print_system_info();
            for (ggml_backend_dev_t dev : accel_devices())
                s += std::string(" ACCEL: ") + ggml_backend_dev_name(dev) + " (" +
                     ggml_backend_dev_description(dev) + ") |";
            return s;
        }();
        return info.c_str();
    } catch (...) {
        return "";
    }
}

int32_t g4r_gpu_count(void) {
    try {
        ensure_backend();
        return static_cast<int32_t>(gpu_devices().size());
    } catch (...) {
        return 0;
    }
}

g4r_status g4r_gpu_info(int32_t index, const char **name, const char **description,
                        const char **backend) {
    G4R_GUARD_BEGIN
    clear_error();
    ensure_backend();
    auto gpus = gpu_devices();
    if (index < 0 || static_cast<size_t>(index) >= gpus.size())
        fail(G4R_ERR_NOT_FOUND, "no GPU device with index " + std::to_string(index) + " (" +
                                    std::to_string(gpus.size()) + " available)");
    if (name) *name = ggml_backend_dev_name(gpus[index]);
    if (description) *description = ggml_backend_dev_description(gpus[index]);
    if (backend) *backend = backend_name_of(gpus[index]);
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
