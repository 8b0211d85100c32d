#include "kernels/tpa_contract.h"

namespace t6 {

// out[n,h,:] = scale * sum_r A[n,h,r] * B[n,r,:]  (official: bmm(A, B).div_(rank); we multiply by
// scale = 1/R, which differs from the division by at most one float32 rounding).
void tpa_contract_forward(float* out, const float* A, long a_stride, const float* Bf, long b_stride,
                          int N, int H, int R, int D, float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        for (int h = 0; h < H; h++) {
            float* __restrict o = out + ((long)n * H + h) * D;
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int r = 0; r < R; r++) {
                const float ar = a[h * R + r];
                const float* __restrict br = b + (long)r * D;
                for (int d = 0; d < D; d++) o[d] += ar * br[d];
            }
            for (int d = 0; d < D; d++) o[d] *= scale;
        }
    }
}

// dA[n,h,r] = scale * <dout[n,h,:], B[n,r,:]>;  dB[n,r,:] = scale * sum_h A[n,h,r] dout[n,h,:].
void tpa_contract_backward(float* dA, float* dB, const float* dout, const float* A, long a_stride,
                           const float* Bf, long b_stride, int N, int H, int R, int D,
                           float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        const float* g = dout + (long)n * H * D;
        float* da = dA + n * a_stride;
        float* db = dB + n * b_stride;
        for (int h = 0; h < H; h++) {
            const float* __restrict gh = g + (long)h * D;
            for (int r = 0; r < R; r++) {
                const float* __restrict br = b + (long)r * D;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int d = 0; d < D; d++) s += gh[d] * br[d];
                da[h * R + r] = scale * s;
            }
        }
        for (int r = 0; r < R; r++) {
            float* __restrict dbr = db + (long)r * D;
            for (int d = 0; d < D; d++) dbr[d] = 0.0f;
            for (int h = 0; h < H; h++) {
                const float ahr = scale * a[h * R + r];
                const float* __restrict gh = g + (long)h * D;
                for (int d = 0; d < D; d++) dbr[d] += ahr * gh[d];
            }
        }
    }
}

}  // namespace t6
