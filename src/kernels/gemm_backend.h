// Which library runs t6's float32 GEMMs. OpenBLAS is the default, but its DYNAMIC_ARCH build picks
// its kernels by the CPU's family and model when it loads, and a CPU newer than the library (e.g.
// a 5th-generation Xeon, model 207, under OpenBLAS 0.3.21) falls to its "Prescott" SSE3 kernel:
// about a quarter of the machine's GEMM rate, on a CPU with AVX-512. oneDNN (already linked for
// the bf16 matmul) chooses its JIT kernels by the CPU's feature flags instead, so it is right on
// CPUs it has never heard of. The backend is chosen once, at the first GEMM:
//   T6_GEMM=openblas | onednn   forces one;
//   T6_GEMM=auto (or unset)     OpenBLAS, unless the kernel it chose lacks AVX2+FMA while the CPU
//                               has them; then oneDNN's sgemm.
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

// The backend auto chooses for an OpenBLAS core name on a CPU with or without AVX2+FMA.
GemmBackend gemm_backend_auto(const std::string& openblas_core, bool cpu_has_avx2_fma);

}  // namespace t6
