// The one wrapper over the GEMM libraries. Everything in t6 that multiplies matrices goes through
// here, so a library can be swapped in one place:
//   - float32 (the reference): OpenBLAS, OpenMP build; oneDNN's sgemm where OpenBLAS picked a
//     kernel below the CPU's instruction set, or when T6_GEMM says so (gemm_backend.h);
//   - bf16 matmul precision: the product of the bf16-rounded inputs with float32 accumulation and
//     output. With native bf16 (simd_native_bf16(), core/simd.h) oneDNN's matmul primitive runs it
//     (the machine's `vdpbf16ps`, about 2x the fp32 GEMM rate); on any other CPU or SIMD cap,
//     the float32 sgemm on float32 copies of the rounded inputs (the same numbers, summed in
//     another order; no faster than float32).
// All matrices are row-major and float32 in memory; the precision only changes how products are
// computed, like PyTorch's torch.set_float32_matmul_precision.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/bf16.h"  // to_bf16 for gemm_bf16_a's operand

namespace t6 {

enum class MatmulPrecision {
    f32,   // exact float32 products (default; the conformance reference)
    bf16,  // inputs rounded to bfloat16, products accumulated in float32
};

// "f32" / "bf16"; parse fails with a one-line error naming `where` for anything else.
const char* matmul_precision_name(MatmulPrecision p);
MatmulPrecision parse_matmul_precision(const std::string& s, const std::string& where);

// The precision gemm() uses on this thread (f32 unless a ScopedMatmulPrecision is active).
MatmulPrecision matmul_precision();
class ScopedMatmulPrecision {
  public:
    explicit ScopedMatmulPrecision(MatmulPrecision p);
    ~ScopedMatmulPrecision();
    ScopedMatmulPrecision(const ScopedMatmulPrecision&) = delete;
    ScopedMatmulPrecision& operator=(const ScopedMatmulPrecision&) = delete;

  private:
    MatmulPrecision prev_;
};

// C[M,N] = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T.
// A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b); lda/ldb/ldc are row
// strides in elements. Runs at matmul_precision(); single-row products (M == 1), small products
// and calls from inside a parallel region always run in float32.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// Same product with A already rounded to bf16 (see to_bf16): always the bf16 path. Lets a caller
// that feeds one large operand to several products round it once.
void gemm_bf16_a(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc);

// Linear layer without bias, PyTorch layout: out[N,OC] = inp[N,C] @ W[OC,C]^T.
void linear_forward(float* out, const float* inp, const float* W, int N, int C, int OC);

// Backward of linear_forward. Accumulates (+=) into dinp[N,C] (if non-null) and dW[OC,C] (if
// non-null): dinp += dout @ W, dW += dout^T @ inp.
void linear_backward(float* dinp, float* dW, const float* dout, const float* inp, const float* W,
                     int N, int C, int OC);

// The float32 GEMM in force: the library and the kernel it selected (e.g. "OpenBLAS 0.3.21 ...
// kernel=Cooperlake", or "oneDNN 2.7.3 sgemm (why)").
std::string gemm_kernel_name();
// The bf16 GEMM path in force now: oneDNN's name, version and ISA, or the OpenBLAS fallback
// ("bf16-rounded inputs, f32 OpenBLAS sgemm (no native bf16; ...)").
std::string gemm_bf16_kernel_name();

}  // namespace t6
