// The running CPU's instruction-set flags and brand (g4r_cpu_flags, g4r_cpu_brand): what the
// system report and the build's kernel decision read. The reader is shared with the build's
// probe (cpu_flags.h); this file is compiled without ISA flags, so it runs on any x86-64.
#include "g4r.h"

#include "cpu_flags.h"

namespace {

struct cpu_info {
    char flags[512];
    char brand[49];
    cpu_info() { g4r_read_cpu_flags(flags, sizeof flags, brand); }
};

const cpu_info &info() {
    static const cpu_info once;  // thread-safe initialisation (C++11)
    return once;
}

}  // namespace

const char *g4r_cpu_flags(void) { return info().flags; }

const char *g4r_cpu_brand(void) { return info().brand; }
