// Which library runs t6's float32 GEMMs. OpenBLAS is the default, but its DYNAMIC_ARCH build picks
// its kernels by the CPU's family and model when it loads, and a CPU newer than the library (e.g.
// a 5th-generation Xeon, model 207, under OpenBLAS 0.3.21) falls to its "Prescott" SSE3 kernel:
// about a quarter of the machine's GEMM rate, on a CPU with AVX-512. oneDNN (already linked for
// the bf16 matmul) chooses its JIT kernels by the CPU's feature flags instead, so it is right on
// CPUs it has never heard of. The backend is chosen once, at the first GEMM:
//   T6_GEMM=openblas | onednn   forces one;
//   T6_GEMM=auto (or unset)     OpenBLAS, unless the kernel it chose lacks AVX2+FMA while the CPU
//                               has them, or the CPU is an AMD Zen 4 or Zen 5; then oneDNN's sgemm.
// Zen 4 (AMD family 25 with AVX-512) runs a 512-bit FMA as two 256-bit halves; there OpenBLAS
// 0.3.21 picks its Cooperlake AVX-512 kernel, and oneDNN's sgemm ran every training benchmark
// faster (2026-12-02, `t6 bench train`, two rounds: tiny-t6 1459-1638 -> 1773-1848 tokens/s,
// tiny-mha 1241-1671 -> 1774-1895, small-t6 204-210 -> 231, small-mha 211-217 -> 254; the GEMM
// probe 141-193 -> 203-218 GFLOP/s). On Zen 5 (family 26, full-width 512-bit FMA) the first
// measurement (../shared/baselines.md: 2048x3072x768, OpenBLAS 378 against oneDNN 319 GFLOP/s)
// caught oneDNN cold: its sgemm needs about ten calls to reach its rate (one process, the probe's
// shape: 215, 265-279 for calls 2-5, 343-350 for 6-8, then 382-387 GFLOP/s, against OpenBLAS's
// 262 and then 324-355). Warm, as in training, it ran every `t6 bench train` configuration faster
// there too (2026-12-03, three alternating rounds, median tokens/s OpenBLAS -> oneDNN: tiny-t6
// 2690 -> 2916, tiny-mha 2662 -> 3068, small-t6 350 -> 395, small-mha 385 -> 431; 10 of 12 pairs
// won), so the rule names both.
#pragma once
#include <string>

namespace t6 {

enum class GemmBackend { openblas, onednn };

// "openblas" | "onednn".
const char* gemm_backend_name(GemmBackend b);

// The backend in force (chosen on first call; a one-line error for an unknown T6_GEMM value).
GemmBackend gemm_backend();

// Why it was chosen, in words (e.g. "T6_GEMM=onednn", or "OpenBLAS chose its Prescott kernel (no
// AVX2/FMA) on a CPU with AVX2+FMA").
std::string gemm_backend_reason();

// Whether an OpenBLAS core name (openblas_get_corename(), e.g. "Haswell", "SkylakeX",
// "Prescott") is one of OpenBLAS's x86-64 kernels that use AVX2+FMA or AVX-512.
bool openblas_core_has_fma(const std::string& core);

// Whether a CPU is an AMD Zen 4 or Zen 5: vendor AuthenticAMD with AVX-512, family 25 (Zen 3 and
// Zen 4; Zen 3 has no AVX-512) or 26 (Zen 5).
bool cpu_is_amd_zen4_or_zen5(const std::string& vendor, int family, bool cpu_has_avx512);

// The backend auto chooses for an OpenBLAS core name on a CPU with or without AVX2+FMA, an AMD
// Zen 4 / Zen 5 or not.
GemmBackend gemm_backend_auto(const std::string& openblas_core, bool cpu_has_avx2_fma,
                              bool cpu_zen4_or_zen5 = false);

}  // namespace t6
