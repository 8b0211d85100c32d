#include "kernels/gemm.h"

#include <cblas.h>

extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace t6 {

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (M == 1) {
        // One row (decoding one token): a matrix-vector product. OpenBLAS's sgemm runs such
        // shapes several times slower than sgemv, which streams the matrix at memory speed.
        // C[1,N] = alpha * a op(B): with B [N,K] (trans_b) that is B a, with B [K,N] it is B^T a.
        const int incx = trans_a ? lda : 1;
        if (trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, incx, beta, C, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, incx, beta, C, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void linear_forward(float* out, const float* inp, const float* W, int N, int C, int OC) {
    gemm(false, true, N, OC, C, 1.0f, inp, C, W, C, 0.0f, out, OC);
}

void linear_backward(float* dinp, float* dW, const float* dout, const float* inp, const float* W,
                     int N, int C, int OC) {
    if (dinp) gemm(false, false, N, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    if (dW) gemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
}

std::string gemm_kernel_name() {
    std::string s = "OpenBLAS ";
    const char* cfg = openblas_get_config();
    const char* core = openblas_get_corename();
    s += cfg ? cfg : "?";
    s += " kernel=";
    s += core ? core : "?";
    return s;
}

}  // namespace t6
