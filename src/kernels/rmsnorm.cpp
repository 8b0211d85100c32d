// RMSNorm forward and backward:
//   y_c = x_c * r * w_c,  r = (mean_c x_c^2 + eps)^(-1/2),
//   dx_c += r * w_c * dy_c - (r^3 / C) * x_c * sum_k dy_k w_k x_k,  dw_c += sum_n dy_nc x_nc r_n.
// The row sums are accumulated in double (the official F.rms_norm runs in float32 with a
// pairwise-ish reduction; double keeps the result within float rounding of the exact value).
// Row kernels are Google Highway code compiled for AVX-512, AVX2 and scalar and chosen at run time
// (core/simd.h); rmsnorm_*_reference are the plain loops the tests compare them against.
#include "kernels/rmsnorm.h"

#include <cmath>

#include "core/parallel_items.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/rmsnorm.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Rows [n0, n1): out = inp * rstd [* weight].
void ForwardRows(float* out, float* rstd, const float* inp, const float* weight, int n0, int n1,
                 int C, float eps) {
    const DF d;
    const int L = int(hn::Lanes(d));
    for (int n = n0; n < n1; n++) {
        const float* HWY_RESTRICT x = inp + (long)n * C;
        float* HWY_RESTRICT o = out + (long)n * C;
        const double ms = DotF64(x, x, C) / C;
        const float r = float(1.0 / std::sqrt(ms + double(eps)));
        rstd[n] = r;
        const auto vr = hn::Set(d, r);
        int c = 0;
        if (weight) {
            for (; c + L <= C; c += L)
                hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + c), vr), hn::LoadU(d, weight + c)), d,
                           o + c);
            for (; c < C; c++) o[c] = (x[c] * r) * weight[c];
        } else {
            for (; c + L <= C; c += L) hn::StoreU(hn::Mul(hn::LoadU(d, x + c), vr), d, o + c);
            for (; c < C; c++) o[c] = x[c] * r;
        }
    }
}

// Rows [n0, n1) of dinp.
void BackwardRows(float* dinp, const float* dout, const float* inp, const float* weight,
                  const float* rstd, int n0, int n1, int C) {
    const DF d;
    const int L = int(hn::Lanes(d));
    for (int n = n0; n < n1; n++) {
        const float* HWY_RESTRICT x = inp + (long)n * C;
        const float* HWY_RESTRICT dy = dout + (long)n * C;
        float* HWY_RESTRICT dx = dinp + (long)n * C;
        const float r = rstd[n];
        const double dot = weight ? Dot3F64(dy, weight, x, C) : DotF64(dy, x, C);
        const float k = float(dot * double(r) * r * r / C);
        const auto vr = hn::Set(d, r), vk = hn::Set(d, k);
        int c = 0;
        if (weight) {
            for (; c + L <= C; c += L) {
                const auto a = hn::Mul(hn::Mul(vr, hn::LoadU(d, weight + c)), hn::LoadU(d, dy + c));
                const auto v = hn::Sub(a, hn::Mul(vk, hn::LoadU(d, x + c)));
                hn::StoreU(hn::Add(hn::LoadU(d, dx + c), v), d, dx + c);
            }
            for (; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
        } else {
            for (; c + L <= C; c += L) {
                const auto v =
                    hn::Sub(hn::Mul(vr, hn::LoadU(d, dy + c)), hn::Mul(vk, hn::LoadU(d, x + c)));
                hn::StoreU(hn::Add(hn::LoadU(d, dx + c), v), d, dx + c);
            }
            for (; c < C; c++) dx[c] += r * dy[c] - k * x[c];
        }
    }
}

// dweight[c0, c1) += sum_n dy_nc x_nc r_n, rows in order.
void WeightGradCols(float* dweight, const float* dout, const float* inp, const float* rstd, int N,
                    int C, int c0, int c1) {
    const DF d;
    const int L = int(hn::Lanes(d));
    for (int n = 0; n < N; n++) {
        const float* HWY_RESTRICT x = inp + (long)n * C;
        const float* HWY_RESTRICT dy = dout + (long)n * C;
        const float r = rstd[n];
        const auto vr = hn::Set(d, r);
        int c = c0;
        for (; c + L <= c1; c += L) {
            const auto v = hn::Mul(hn::Mul(hn::LoadU(d, dy + c), hn::LoadU(d, x + c)), vr);
            hn::StoreU(hn::Add(hn::LoadU(d, dweight + c), v), d, dweight + c);
        }
        for (; c < c1; c++) dweight[c] += dy[c] * x[c] * r;
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(ForwardRows);
HWY_EXPORT(BackwardRows);
HWY_EXPORT(WeightGradCols);

namespace {
constexpr int kRows = 16;    // rows per OpenMP work item
constexpr int kBlock = 256;  // dweight columns per work item
}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
    const int blocks = (N + kRows - 1) / kRows;
    parallel_items(blocks, [&](long blk) {
        const int n0 = int(blk) * kRows, n1 = n0 + kRows < N ? n0 + kRows : N;
        HWY_DYNAMIC_DISPATCH(ForwardRows)(out, rstd, inp, weight, n0, n1, C, eps);
    });
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
    const int blocks = (N + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int n0 = blk * kRows, n1 = n0 + kRows < N ? n0 + kRows : N;
        HWY_DYNAMIC_DISPATCH(BackwardRows)(dinp, dout, inp, weight, rstd, n0, n1, C);
    }
    if (!weight || !dweight) return;
    // Parallel over column blocks, rows in order (deterministic).
    const int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        const int c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
        HWY_DYNAMIC_DISPATCH(WeightGradCols)(dweight, dout, inp, rstd, N, C, c0, c1);
    }
}

void rmsnorm_forward_reference(float* out, float* rstd, const float* inp, const float* weight,
                               int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float* x = inp + (long)n * C;
        float* o = out + (long)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += double(x[c]) * double(x[c]);
        const float r = float(1.0 / std::sqrt(s / C + double(eps)));
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = weight ? (x[c] * r) * weight[c] : x[c] * r;
    }
}

void rmsnorm_backward_reference(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float* x = inp + (long)n * C;
        const float* dy = dout + (long)n * C;
        float* dx = dinp + (long)n * C;
        const float r = rstd[n];
        double s = 0.0;
        for (int c = 0; c < C; c++) s += double(dy[c]) * double(weight ? weight[c] : 1.0f) * x[c];
        const float k = float(s * double(r) * r * r / C);
        for (int c = 0; c < C; c++) dx[c] += r * (weight ? weight[c] : 1.0f) * dy[c] - k * x[c];
        if (weight && dweight)
            for (int c = 0; c < C; c++) dweight[c] += dy[c] * x[c] * r;
    }
}

}  // namespace t6
#endif  // HWY_ONCE
