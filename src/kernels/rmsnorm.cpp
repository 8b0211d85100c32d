#include "kernels/rmsnorm.h"

#include <cmath>

namespace t6 {

namespace {

// Sum of squares of one row, accumulated in double: the official F.rms_norm runs in float32 with
// a pairwise-ish reduction; double keeps our result within float rounding of the exact value.
double sum_squares(const float* x, int C) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += double(x[c]) * double(x[c]);
    return s;
}

// sum_c dout[c] * w[c] * x[c] (w may be null), in double.
double dot_dout_w_x(const float* dout, const float* w, const float* x, int C) {
    double s = 0.0;
    if (w) {
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += double(dout[c]) * double(w[c]) * double(x[c]);
    } else {
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += double(dout[c]) * double(x[c]);
    }
    return s;
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (long)n * C;
        float* o = out + (long)n * C;
        const double ms = sum_squares(x, C) / C;
        const float r = float(1.0 / std::sqrt(ms + double(eps)));
        rstd[n] = r;
        if (weight) {
            for (int c = 0; c < C; c++) o[c] = (x[c] * r) * weight[c];
        } else {
            for (int c = 0; c < C; c++) o[c] = x[c] * r;
        }
    }
}

// y_c = x_c * r * w_c with r = (mean(x^2) + eps)^(-1/2), dr/dx_c = -r^3 x_c / C, so
//   dx_c = r * w_c * dy_c - (r^3 / C) * x_c * sum_k dy_k w_k x_k.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (long)n * C;
        const float* dy = dout + (long)n * C;
        float* dx = dinp + (long)n * C;
        const float r = rstd[n];
        const float k = float(dot_dout_w_x(dy, weight, x, C) * double(r) * r * r / C);
        if (weight) {
            for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
        } else {
            for (int c = 0; c < C; c++) dx[c] += r * dy[c] - k * x[c];
        }
    }
    if (!weight || !dweight) return;
    // dw_c = sum_n dy_nc * x_nc * r_n: parallel over column blocks, rows in order (deterministic).
    constexpr int kBlock = 256;
    const int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        const int c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
        for (int n = 0; n < N; n++) {
            const float* x = inp + (long)n * C;
            const float* dy = dout + (long)n * C;
            const float r = rstd[n];
            for (int c = c0; c < c1; c++) dweight[c] += dy[c] * x[c] * r;
        }
    }
}

}  // namespace t6
