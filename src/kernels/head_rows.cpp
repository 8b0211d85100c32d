// rows_axpy and rows_dot (kernels/head_rows.h): the per-head products of absorbed MLA decoding.
// Before they were plain loops in mla.cpp, compiled for the portable x86-64 baseline (SSE2:
// 4 floats per instruction) whatever the CPU; here every target's vectors are used. rows_axpy
// holds up to kCols vectors of y in registers over all rows (AVX-512: a whole 256-number latent
// row), so each row of X is read once, in order; rows_dot takes four rows at a time and reduces
// their partial sums at once (linear_tiling-inl.h's Sum4).
#include "kernels/head_rows.h"

#include <algorithm>
#include <cstddef>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/head_rows.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr int kL = int(hn::MaxLanes(DF()));
// Vectors of y held in registers: 16 of AVX-512's 32, 8 of AVX2's 16.
constexpr int kCols = kL >= 16 ? 16 : 8;

// Columns [c0, c0 + NV * L) of y (the last vector masked to n).
template <int NV>
HWY_INLINE void AxpyCols(float* y, const float* a, const float* X, long ldx, int rows, int c0,
                         int n) {
    const DF d;
    VF acc[NV];
    for (int v = 0; v < NV; v++) acc[v] = hn::Zero(d);
    const size_t left = size_t(n - c0 - (NV - 1) * kL);  // lanes of the last vector
    const auto last = hn::FirstN(d, left);
    for (int r = 0; r < rows; r++) {
        const float* x = X + size_t(r) * size_t(ldx) + c0;
        const VF w = hn::Set(d, a[r]);
        for (int v = 0; v + 1 < NV; v++) acc[v] = hn::MulAdd(w, hn::LoadU(d, x + v * kL), acc[v]);
        const VF xl = left >= size_t(kL) ? hn::LoadU(d, x + (NV - 1) * kL)
                                         : hn::MaskedLoad(last, d, x + (NV - 1) * kL);
        acc[NV - 1] = hn::MulAdd(w, xl, acc[NV - 1]);
    }
    for (int v = 0; v + 1 < NV; v++) hn::StoreU(acc[v], d, y + c0 + v * kL);
    if (left >= size_t(kL))
        hn::StoreU(acc[NV - 1], d, y + c0 + (NV - 1) * kL);
    else
        hn::BlendedStore(acc[NV - 1], last, d, y + c0 + (NV - 1) * kL);
}

template <int NV>
HWY_INLINE void AxpyColsUpTo(float* y, const float* a, const float* X, long ldx, int rows, int c0,
                             int n, int nv) {
    if constexpr (NV > 1) {
        if (nv < NV) return AxpyColsUpTo<NV - 1>(y, a, X, ldx, rows, c0, n, nv);
    }
    AxpyCols<NV>(y, a, X, ldx, rows, c0, n);
}
#endif

}  // namespace

void RowsAxpy(float* y, const float* a, const float* X, long ldx, int rows, int n) {
#if HWY_TARGET == HWY_SCALAR
    std::fill(y, y + n, 0.0f);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n; c++) y[c] += a[r] * X[size_t(r) * size_t(ldx) + c];
#else
    for (int c0 = 0; c0 < n; c0 += kCols * kL) {
        const int nv = std::min(kCols, (n - c0 + kL - 1) / kL);
        AxpyColsUpTo<kCols>(y, a, X, ldx, rows, c0, n, nv);
    }
#endif
}

void RowsDot(float* out, const float* X, long ldx, int rows, const float* v, int n) {
#if HWY_TARGET == HWY_SCALAR
    for (int r = 0; r < rows; r++) {
        float s = 0.0f;
        for (int c = 0; c < n; c++) s += X[size_t(r) * size_t(ldx) + c] * v[c];
        out[r] = s;
    }
#else
    const DF d;
    const int nw = n - n % kL;  // whole vectors; the rest in scalar code
    for (int r0 = 0; r0 < rows; r0 += 4) {
        const float* x[4];
        for (int k = 0; k < 4; k++) x[k] = X + size_t(std::min(r0 + k, rows - 1)) * size_t(ldx);
        VF acc[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
        for (int c = 0; c < nw; c += kL) {
            const VF vv = hn::LoadU(d, v + c);
            for (int k = 0; k < 4; k++) acc[k] = hn::MulAdd(hn::LoadU(d, x[k] + c), vv, acc[k]);
        }
        HWY_ALIGN float s[4];
        hn::Store(tiling::Sum4(acc[0], acc[1], acc[2], acc[3]), hn::Full128<float>(), s);
        for (int k = 0; k < 4 && r0 + k < rows; k++) {
            for (int c = nw; c < n; c++) s[k] += x[k][c] * v[c];
            out[r0 + k] = s[k];
        }
    }
#endif
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(RowsAxpy);
HWY_EXPORT(RowsDot);

void rows_axpy(float* y, const float* a, const float* X, long ldx, int rows, int n) {
    if (n <= 0) return;
    HWY_DYNAMIC_DISPATCH(RowsAxpy)(y, a, X, ldx, rows, n);
}
void rows_dot(float* out, const float* X, long ldx, int rows, const float* v, int n) {
    if (rows <= 0) return;
    HWY_DYNAMIC_DISPATCH(RowsDot)(out, X, ldx, rows, v, n);
}

}  // namespace t6
#endif  // HWY_ONCE
