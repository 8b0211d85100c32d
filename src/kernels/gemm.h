// The one wrapper over the GEMM library (OpenBLAS, OpenMP build). Everything in t6 that multiplies
// matrices goes through here, so the library can be swapped in one place.
// All matrices are row-major.
#pragma once
#include <string>

namespace t6 {

// C[M,N] = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T.
// A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b); lda/ldb/ldc are row
// strides in elements.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// Linear layer without bias, PyTorch layout: out[N,OC] = inp[N,C] @ W[OC,C]^T.
void linear_forward(float* out, const float* inp, const float* W, int N, int C, int OC);

// Backward of linear_forward. Accumulates (+=) into dinp[N,C] (if non-null) and dW[OC,C] (if
// non-null): dinp += dout @ W, dW += dout^T @ inp.
void linear_backward(float* dinp, float* dW, const float* dout, const float* inp, const float* W,
                     int N, int C, int OC);

// Name of the GEMM kernel the library selected at load time (e.g. "OpenBLAS 0.3.21 Cooperlake").
std::string gemm_kernel_name();

}  // namespace t6
