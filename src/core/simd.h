// Run-time choice of the SIMD code path. Every hand-vectorised kernel is written once against
// Google Highway (hwy/highway.h) and compiled for several targets; the best one this CPU supports
// runs, capped by the environment variable T6_SIMD (or set_simd_target, for tests and benchmarks).
//
// t6's targets on x86-64, each a superset of the one before:
//   scalar      Highway's HWY_SCALAR (one lane; any x86-64, any CPU)
//   avx2        Highway's HWY_AVX2 (AVX2 + FMA + F16C + BMI2: Haswell, Zen 1 and later)
//   avx512      Highway's HWY_AVX3 (AVX-512 F/VL/DQ/BW: Skylake-SP, Zen 4 and later)
//   avx512bf16  avx512 plus t6's own vdpbf16ps kernels (AVX512_BF16: Cooper Lake, Zen 4 and later)
// and on aarch64 (ARM64):
//   scalar      Highway's HWY_SCALAR
//   neon        Highway's HWY_NEON (Advanced SIMD; Highway 1.0 also requires the AES extension, so
//               a CPU without it, e.g. the Raspberry Pi 4's Cortex-A72, runs scalar)
//   sve, sve2   Highway's HWY_SVE / HWY_SVE2: named, but not compiled into this build (Highway's
//   SVE
//               vectors are sizeless types that t6's register-tiled kernels cannot hold), so they
//               are never available and a cap of sve or sve2 means neon.
// bf16 numbers are widened to float32 on every target except avx512bf16 (on NEON, Highway 1.0's
// bf16 ReorderWidenMulAccumulate widens too: no BFDOT/BFMMLA path).
// Only the names of the building architecture are accepted (T6_SIMD=neon is an error on x86-64).
// A build with -DT6_NATIVE=ON compiles the Highway kernels for the building CPU's own target only;
// the lower targets then do not exist in it (simd_available_targets says which do).
#pragma once
#include <string>
#include <vector>

namespace t6 {

// Ordered within each architecture (a higher value is a superset of a lower one there).
enum class SimdTarget {
    scalar = 0,
    avx2 = 1,
    avx512 = 2,
    avx512bf16 = 3,
    neon = 4,
    sve = 5,
    sve2 = 6,
};

// "scalar" | "avx2" | "avx512" | "avx512bf16" | "neon" | "sve" | "sve2".
const char* simd_target_name(SimdTarget t);
// The inverse, for this architecture's targets; a one-line error naming `where` for anything else.
SimdTarget parse_simd_target(const std::string& s, const std::string& where);
// This architecture's targets, from scalar up (x86-64: scalar avx2 avx512 avx512bf16; aarch64:
// scalar neon sve sve2), whether or not this CPU or build has them.
const std::vector<SimdTarget>& simd_arch_targets();
// Highway's name of the target the Highway kernels run at t6 target t ("SCALAR", "AVX2", "AVX3",
// "NEON", "SVE", "SVE2"), as simd_highway_target_name() reports it when t is in force.
const char* simd_highway_name_of(SimdTarget t);

// The best target this CPU (and this build) supports, ignoring any cap.
SimdTarget simd_cpu_best();
// Every target that can run here, from scalar up to simd_cpu_best().
std::vector<SimdTarget> simd_available_targets();

// The target in force: simd_cpu_best() capped by T6_SIMD (read once) or by set_simd_target.
// Throws t6::Error if T6_SIMD holds an unknown name.
SimdTarget simd_target();
// Sets the cap (clamped to simd_cpu_best()) and returns the target now in force. Not to be called
// while kernels run on other threads.
SimdTarget set_simd_target(SimdTarget t);
// True when the hand-written vdpbf16ps kernels run (simd_target() == avx512bf16).
bool simd_native_bf16();

// How the decoding kernels (FlashTPA, absorbed MLA) read a bf16 cache where simd_native_bf16():
// multiplied as bf16 with vdpbf16ps (which also rounds the query factor and the value weights to
// bf16), or widened to float32 and multiplied with fp32 FMAs (float32 arithmetic). `automatic`
// picks per CPU: vdpbf16ps on AMD, widening elsewhere. The probes of `t6 bench decode` tell why:
// on AMD Zen 5 vdpbf16ps peaks at 842-848 GFLOP/s against an fp32 FMA peak of up to 469, and on
// Zen 4 it made MLA's attention phase 1.55-1.63x faster (docs/decode-bench.md, sessions 21-22); on
// an Intel Xeon with AVX-512 BF16 and AMX (family 6 model 167) it peaks at 221-240 against
// 446-484, and widening made the steps 1.11-1.24x faster (small-t6, small-t6-kvonly, small-mla at
// 16K and 64K, f32 weights, medians of 3 rounds; the attention phase 1.20-1.33x; session 33).
// T6_BF16_DOT=auto|on|off sets it for the process (read once); a bad value is a one-line error.
enum class Bf16DotDecode { automatic, on, off };
Bf16DotDecode parse_bf16_dot_decode(const std::string& s, const std::string& where);
// The setting in force (T6_BF16_DOT, or set_bf16_dot_decode); throws t6::Error for a bad
// T6_BF16_DOT.
Bf16DotDecode bf16_dot_decode_setting();
// Sets it and returns the previous one (not while kernels run on other threads).
Bf16DotDecode set_bf16_dot_decode(Bf16DotDecode m);
// True when the decoding kernels multiply a bf16 cache with vdpbf16ps now: simd_native_bf16()
// and the setting (automatic: the CPU is AMD's).
bool simd_bf16_dot_decode();

// Throws t6::Error for a bad T6_SIMD or T6_BF16_DOT (the command line checks them before every
// command, so that a bad value is an error whatever the command runs).
void simd_check_env();

// Applies the T6_SIMD cap once (later calls do nothing) and returns true. Every translation unit
// that includes this header calls it while the program starts (kSimdCapApplied below), and every
// file of Highway kernels includes it: a program that links only some kernels from libt6core.a,
// a benchmark driver say, then still links simd.cpp and runs under the cap. (When only simd.cpp
// itself did this, such a driver silently ran the best target whatever T6_SIMD said.)
bool simd_apply_env();
inline const bool kSimdCapApplied = simd_apply_env();

// The Highway target that HWY_DYNAMIC_DISPATCH now selects, by Highway's name ("AVX3", "AVX2",
// "SCALAR"): what the Highway kernels actually run.
std::string simd_highway_target_name();

// The CPU: model name (from /proc/cpuinfo; on ARM, which has none, its implementer and part
// numbers) and the SIMD features t6 cares about that it has (e.g. "avx2 fma avx512f avx512dq
// avx512bw avx512vl avx512bf16"; on aarch64, from the kernel's hwcaps: "asimd asimdhp asimddp
// bf16 i8mm sve sve2 svebf16").
std::string cpu_model_name();
std::string cpu_simd_features();
// The x86-64 CPU's CPUID vendor ("AuthenticAMD", "GenuineIntel") and display family and model
// (e.g. family 25 model 17: an AMD Zen 4 EPYC); empty and zeros on other architectures.
struct CpuSignature {
    std::string vendor;
    int family = 0, model = 0;
};
CpuSignature cpu_signature();
// True when the CPU has AVX-512 VNNI (vpdpbusd; the int8 GEMV kernel uses it on the avx512
// targets). False on other architectures.
bool cpu_has_avx512_vnni();

// Sets a target for a scope and restores the previous one (tests, benchmarks).
class ScopedSimdTarget {
  public:
    explicit ScopedSimdTarget(SimdTarget t) : prev_(simd_target()) { set_simd_target(t); }
    ~ScopedSimdTarget() { set_simd_target(prev_); }
    ScopedSimdTarget(const ScopedSimdTarget&) = delete;
    ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;

  private:
    SimdTarget prev_;
};

// Sets the bf16-cache decoding path for a scope and restores the previous one (tests, benchmarks).
class ScopedBf16DotDecode {
  public:
    explicit ScopedBf16DotDecode(Bf16DotDecode m) : prev_(set_bf16_dot_decode(m)) {}
    ~ScopedBf16DotDecode() { set_bf16_dot_decode(prev_); }
    ScopedBf16DotDecode(const ScopedBf16DotDecode&) = delete;
    ScopedBf16DotDecode& operator=(const ScopedBf16DotDecode&) = delete;

  private:
    Bf16DotDecode prev_;
};

}  // namespace t6
