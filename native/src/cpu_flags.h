/*
 * cpu_flags.h - the x86 instruction-set extensions the running CPU has AND its operating system
 * has enabled, read from the CPU itself (cpuid and xgetbv), named as Linux's /proc/cpuinfo
 * names them ("sse4_2 avx f16c fma avx2 bmi2 avx512f ...").
 *
 * Shared by the library (g4r_cpu_info) and the build's probe (native/cmake/cpu_probe.c), so that
 * the development build decides its CPU kernels from the same facts the run-time report shows.
 * /proc/cpuinfo is not used: under an emulator (qemu-user -cpu MODEL) it still shows the host's
 * flags, while cpuid answers for the emulated CPU, as ggml's own variant score does.
 *
 * Bits: Intel SDM vol. 2A, CPUID (leaf 1 ECX; leaf 7 sub-leaf 0 EBX/ECX/EDX; leaf 7 sub-leaf 1
 * EAX); register state: XCR0 via XGETBV (bit 1 SSE, 2 AVX, 5-7 AVX-512 opmask/ZMM, 17-18 AMX
 * tile config/data). A feature whose register state the OS does not save is reported absent.
 */
#ifndef G4R_CPU_FLAGS_H
#define G4R_CPU_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define G4R_CPU_X86 1
static void g4r_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static uint64_t g4r_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#define G4R_CPU_X86 1
static void g4r_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; ++i) r[i] = (uint32_t)v[i];
}
static uint64_t g4r_xgetbv0(void) { return _xgetbv(0); }
#endif

enum { G4R_EAX = 0, G4R_EBX = 1, G4R_ECX = 2, G4R_EDX = 3 };

/* Register state a feature needs enabled in XCR0. */
#define G4R_XS_NONE 0ull
#define G4R_XS_AVX 0x6ull        /* SSE + AVX (YMM) */
#define G4R_XS_AVX512 0xE6ull    /* + opmask, ZMM_Hi256, Hi16_ZMM */
#define G4R_XS_AMX 0x60000ull    /* XTILECFG + XTILEDATA */

struct g4r_cpu_flag {
    const char *name;   /* Linux's /proc/cpuinfo name */
    uint8_t leaf;       /* 1 or 7 */
    uint8_t subleaf;    /* 0, or 1 for leaf 7 sub-leaf 1 */
    uint8_t reg;        /* G4R_EAX..G4R_EDX */
    uint8_t bit;
    uint64_t xstate;    /* XCR0 bits the OS must have enabled */
};

/* The extensions that decide which of ggml's x86 CPU kernels run (and a few a bug report
 * wants beside them); the order is the report's. */
static const struct g4r_cpu_flag G4R_CPU_FLAGS[] = {
    {"sse4_2", 1, 0, G4R_ECX, 20, G4R_XS_NONE},
    {"avx", 1, 0, G4R_ECX, 28, G4R_XS_AVX},
    {"f16c", 1, 0, G4R_ECX, 29, G4R_XS_AVX},
    {"fma", 1, 0, G4R_ECX, 12, G4R_XS_AVX},
    {"avx2", 7, 0, G4R_EBX, 5, G4R_XS_AVX},
    {"bmi2", 7, 0, G4R_EBX, 8, G4R_XS_NONE},
    {"avx_vnni", 7, 1, G4R_EAX, 4, G4R_XS_AVX},
    {"avx512f", 7, 0, G4R_EBX, 16, G4R_XS_AVX512},
    {"avx512dq", 7, 0, G4R_EBX, 17, G4R_XS_AVX512},
    {"avx512cd", 7, 0, G4R_EBX, 28, G4R_XS_AVX512},
    {"avx512bw", 7, 0, G4R_EBX, 30, G4R_XS_AVX512},
    {"avx512vl", 7, 0, G4R_EBX, 31, G4R_XS_AVX512},
    {"avx512vbmi", 7, 0, G4R_ECX, 1, G4R_XS_AVX512},
    {"avx512_vnni", 7, 0, G4R_ECX, 11, G4R_XS_AVX512},
    {"avx512_bf16", 7, 1, G4R_EAX, 5, G4R_XS_AVX512},
    {"avx512_fp16", 7, 0, G4R_EDX, 23, G4R_XS_AVX512},
    {"amx_tile", 7, 0, G4R_EDX, 24, G4R_XS_AMX},
    {"amx_int8", 7, 0, G4R_EDX, 25, G4R_XS_AMX},
    {"amx_bf16", 7, 0, G4R_EDX, 22, G4R_XS_AMX},
};

/* Write the space-separated names of the flags this CPU has and the OS enables into
 * flags[flags_size] and the CPU's brand string into brand[49]; both "" off x86. */
static void g4r_read_cpu_flags(char *flags, size_t flags_size, char brand[49]) {
    flags[0] = '\0';
    brand[0] = '\0';
#ifdef G4R_CPU_X86
    uint32_t r[4], l1[4] = {0}, l70[4] = {0}, l71[4] = {0};
    g4r_cpuid(0, 0, r);
    uint32_t max_leaf = r[0];
    if (max_leaf >= 1) g4r_cpuid(1, 0, l1);
    if (max_leaf >= 7) {
        g4r_cpuid(7, 0, l70);
        if (l70[G4R_EAX] >= 1) g4r_cpuid(7, 1, l71);
    }
    /* OSXSAVE (leaf 1 ECX bit 27): XGETBV is usable and XCR0 tells what the OS saves. */
    uint64_t xcr0 = (l1[G4R_ECX] >> 27 & 1u) ? g4r_xgetbv0() : 0;
    size_t used = 0;
    for (size_t i = 0; i < sizeof(G4R_CPU_FLAGS) / sizeof(G4R_CPU_FLAGS[0]); ++i) {
        const struct g4r_cpu_flag *f = &G4R_CPU_FLAGS[i];
        const uint32_t *regs = f->leaf == 1 ? l1 : (f->subleaf == 1 ? l71 : l70);
        if (!(regs[f->reg] >> f->bit & 1u)) continue;
        if ((xcr0 & f->xstate) != f->xstate) continue;
        size_t n = strlen(f->name);
        if (used + n + 2 > flags_size) break;
        if (used) flags[used++] = ' ';
        memcpy(flags + used, f->name, n);
        used += n;
        flags[used] = '\0';
    }
    g4r_cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        for (uint32_t k = 0; k < 3; ++k) {
            g4r_cpuid(0x80000002u + k, 0, r);
            memcpy(brand + 16 * k, r, 16);
        }
        brand[48] = '\0';
        /* Trim the padding some CPUs put around the name. */
        size_t start = 0, end = strlen(brand);
        while (brand[start] == ' ') ++start;
        while (end > start && brand[end - 1] == ' ') --end;
        memmove(brand, brand + start, end - start);
        brand[end - start] = '\0';
    }
#endif
}

#endif /* G4R_CPU_FLAGS_H */
