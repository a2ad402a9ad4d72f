// g4r-status.cpp - status and last error of the calling thread, the log callback, ABI version.
#include "g4r-impl.h"

namespace g4r {

namespace {

thread_local std::string t_error;
thread_local g4r_status t_status = G4R_OK;

g4r_log_callback g_log_cb = nullptr;
void *g_log_ud = nullptr;

}  // namespace

thread_local std::string t_last_log_error;

[[noreturn]] void fail(g4r_status s, const std::string &msg) { throw g4r_failure(s, msg); }

g4r_status set_error(g4r_status s, const std::string &msg) {
    t_status = s;
    t_error = msg;
    return s;
}

void clear_error() {
    t_status = G4R_OK;
    t_error.clear();
}

void log_trampoline(enum ggml_log_level level, const char *text, void * /*ud*/) {
    if (level == GGML_LOG_LEVEL_ERROR && text) {
        t_last_log_error = text;
        while (!t_last_log_error.empty() &&
               (t_last_log_error.back() == '\n' || t_last_log_error.back() == ' ')) {
            t_last_log_error.pop_back();
        }
    }
    g4r_log_callback cb = g_log_cb;
    if (cb) cb(static_cast<int32_t>(level), text ? text : "", g_log_ud);
}

}  // namespace g4r

using namespace g4r;

extern "C" {

int32_t g4r_abi_version(void) { return G4R_ABI_VERSION; }

const char *g4r_last_error(void) { return t_error.c_str(); }

g4r_status g4r_last_status(void) { return t_status; }

void g4r_log_set(g4r_log_callback callback, void *user_data) {
    g_log_ud = user_data;
    g_log_cb = callback;
    try {
        ensure_backend();
    } catch (...) {
    }
}

}  // extern "C"
