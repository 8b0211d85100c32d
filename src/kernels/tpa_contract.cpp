// The TPA factor contraction (Zhang et al., "Tensor Product Attention Is All You Need", 2025):
// eq. (2)-(4) build each token's per-head query/key/value as a scaled sum of R rank-one tensor
// products, e.g. Q_t = (1/R_Q) sum_r a^Q_r(x_t) (x) b^Q_r(x_t) = (1/R_Q) A_Q(x_t)^T B_Q(x_t)
// (eq. (4)), with A (R x H) the head factors and B (R x D) the token factors. Per token n:
//   out[n,h,:] = scale * sum_r A[n,h,r] * B[n,r,:],  scale = 1/R
// (official: bmm(A, B).div_(rank); we multiply by scale = 1/R, which differs from the division by
// at most one float32 rounding), and its gradient
//   dA[n,h,r] = scale * <dout[n,h,:], B[n,r,:]>,  dB[n,r,:] = scale * sum_h A[n,h,r] dout[n,h,:].
// The per-token kernels are Google Highway code compiled for AVX-512, AVX2 and scalar and chosen
// at run time (core/simd.h); tpa_contract_*_reference are the plain loops the tests compare
// them against.
#include "kernels/tpa_contract.h"

#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/tpa_contract.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// o[d] = scale * sum_r coef[r * cstride] * rows[r * rstride + d] for d < D: the sum over r is
// kept in registers, one vector of columns at a time.
HWY_INLINE void CombineRows(float* HWY_RESTRICT o, const float* HWY_RESTRICT coef, long cstride,
                            const float* HWY_RESTRICT rows, long rstride, int R, int D,
                            float scale) {
    const hn::ScalableTag<float> d;
    const int L = int(hn::Lanes(d));
    const auto vs = hn::Set(d, scale);
    int c = 0;
    for (; c + L <= D; c += L) {
        auto acc = hn::Zero(d);
        for (int r = 0; r < R; r++)
            acc = hn::MulAdd(hn::Set(d, coef[r * cstride]), hn::LoadU(d, rows + r * rstride + c),
                             acc);
        hn::StoreU(hn::Mul(acc, vs), d, o + c);
    }
    for (; c < D; c++) {
        float acc = 0.0f;
        for (int r = 0; r < R; r++) acc += coef[r * cstride] * rows[r * rstride + c];
        o[c] = acc * scale;
    }
}

// Tokens [n0, n1) of the forward contraction.
void ForwardTokens(float* out, const float* A, long a_stride, const float* Bf, long b_stride,
                   int n0, int n1, int H, int R, int D, float scale) {
    for (int n = n0; n < n1; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        for (int h = 0; h < H; h++)
            CombineRows(out + ((long)n * H + h) * D, a + h * R, 1, b, D, R, D, scale);
    }
}

// Tokens [n0, n1) of the backward contraction.
void BackwardTokens(float* dA, float* dB, const float* dout, const float* A, long a_stride,
                    const float* Bf, long b_stride, int n0, int n1, int H, int R, int D,
                    float scale) {
    for (int n = n0; n < n1; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        const float* g = dout + (long)n * H * D;
        float* da = dA + n * a_stride;
        float* db = dB + n * b_stride;
        for (int h = 0; h < H; h++)
            for (int r = 0; r < R; r++) da[h * R + r] = scale * Dot(g + (long)h * D, b + r * D, D);
        // dB[r,:] = scale * sum_h A[h,r] dout[h,:]: the forward's combination with A transposed.
        for (int r = 0; r < R; r++) CombineRows(db + (long)r * D, a + r, R, g, D, H, D, scale);
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(ForwardTokens);
HWY_EXPORT(BackwardTokens);

namespace {
constexpr int kTokens = 8;  // tokens per OpenMP work item
}  // namespace

void tpa_contract_forward(float* out, const float* A, long a_stride, const float* Bf, long b_stride,
                          int N, int H, int R, int D, float scale) {
    const int blocks = (N + kTokens - 1) / kTokens;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int n0 = blk * kTokens, n1 = n0 + kTokens < N ? n0 + kTokens : N;
        HWY_DYNAMIC_DISPATCH(ForwardTokens)(out, A, a_stride, Bf, b_stride, n0, n1, H, R, D, scale);
    }
}

void tpa_contract_backward(float* dA, float* dB, const float* dout, const float* A, long a_stride,
                           const float* Bf, long b_stride, int N, int H, int R, int D,
                           float scale) {
    const int blocks = (N + kTokens - 1) / kTokens;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int n0 = blk * kTokens, n1 = n0 + kTokens < N ? n0 + kTokens : N;
        HWY_DYNAMIC_DISPATCH(BackwardTokens)
        (dA, dB, dout, A, a_stride, Bf, b_stride, n0, n1, H, R, D, scale);
    }
}

void tpa_contract_forward_reference(float* out, const float* A, long a_stride, const float* Bf,
                                    long b_stride, int N, int H, int R, int D, float scale) {
    for (int n = 0; n < N; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        for (int h = 0; h < H; h++) {
            float* o = out + ((long)n * H + h) * D;
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int r = 0; r < R; r++)
                for (int d = 0; d < D; d++) o[d] += a[h * R + r] * b[(long)r * D + d];
            for (int d = 0; d < D; d++) o[d] *= scale;
        }
    }
}

void tpa_contract_backward_reference(float* dA, float* dB, const float* dout, const float* A,
                                     long a_stride, const float* Bf, long b_stride, int N, int H,
                                     int R, int D, float scale) {
    for (int n = 0; n < N; n++) {
        const float* a = A + n * a_stride;
        const float* b = Bf + n * b_stride;
        const float* g = dout + (long)n * H * D;
        float* da = dA + n * a_stride;
        float* db = dB + n * b_stride;
        for (int h = 0; h < H; h++) {
            for (int r = 0; r < R; r++) {
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += g[(long)h * D + d] * b[(long)r * D + d];
                da[h * R + r] = scale * s;
            }
        }
        for (int r = 0; r < R; r++) {
            float* dbr = db + (long)r * D;
            for (int d = 0; d < D; d++) dbr[d] = 0.0f;
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++) dbr[d] += scale * a[h * R + r] * g[(long)h * D + d];
        }
    }
}

}  // namespace t6
#endif  // HWY_ONCE
