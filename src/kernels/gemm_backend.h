// Which library runs t6's float32 GEMMs. OpenBLAS is the default, but its DYNAMIC_ARCH build picks
// its kernels by the CPU's family and model when it loads, and a CPU newer than the library (e.g.
// a 5th-generation Xeon, model 207, under OpenBLAS 0.3.21) falls to its "Prescott" SSE3 kernel:
// about a quarter of the machine's GEMM rate, on a CPU with AVX-512. oneDNN (already linked for
// the bf16 matmul) chooses its JIT kernels by the CPU's feature flags instead, so it is right on
// CPUs it has never heard of. The backend is chosen once, at the first GEMM:
//   T6_GEMM=openblas | onednn   forces one;
//   T6_GEMM=auto (or unset)     oneDNN's sgemm on a CPU with AVX-512; elsewhere OpenBLAS, unless
//                               the kernel it chose lacks AVX2+FMA while the CPU has them.
// oneDNN's sgemm has been the faster float32 GEMM on every AVX-512 CPU measured, warm (it needs
// about ten calls to reach its rate), in `t6 bench train` (tokens/s, alternating rounds):
// - AMD Zen 4 (family 25; a 512-bit FMA runs as two 256-bit halves), OpenBLAS's Cooperlake
//   kernel against oneDNN, 2026-12-02, two rounds: tiny-t6 1459-1638 -> 1773-1848, tiny-mha
//   1241-1671 -> 1774-1895, small-t6 204-210 -> 231, small-mha 211-217 -> 254.
// - AMD Zen 5 (family 26), Cooperlake kernel, 2026-12-03, three rounds, medians: tiny-t6 2690 ->
//   2916, tiny-mha 2662 -> 3068, small-t6 350 -> 395, small-mha 385 -> 431 (10 of 12 pairs).
//   `../shared/baselines.md` had OpenBLAS ahead there (2048x3072x768: 378 against 319 GFLOP/s),
//   a figure that caught oneDNN cold.
// - An Intel Xeon with AVX-512 BF16 and AMX (family 6 model 167), OpenBLAS's SkylakeX kernel,
//   2026-12-04, three rounds, medians: tiny-t6 2525 -> 2670, tiny-mha 2591 -> 2789, small-t6
//   340 -> 361, small-mha 373 -> 380 (11 of 12 pairs); batched decoding (small-mha and small-t6,
//   1K context) 3-7% faster at batch 16, level at batch 4.
// CPUs with AVX2 and no AVX-512 keep OpenBLAS: with its Haswell kernel, training as such a CPU
// runs it (T6_SIMD=avx2, OPENBLAS_CORETYPE=Haswell) reached medians of 81-93% of the GEMM rate
// probed beside it (Zen 5, 2026-12-03; the Xeon above, 2026-12-04).
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

// The backend auto chooses for an OpenBLAS core name on a CPU with or without AVX2+FMA and
// AVX-512 (the CPU's own features, not the T6_SIMD cap).
GemmBackend gemm_backend_auto(const std::string& openblas_core, bool cpu_has_avx2_fma,
                              bool cpu_has_avx512 = false);

}  // namespace t6
