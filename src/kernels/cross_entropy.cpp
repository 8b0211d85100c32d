// Cross-entropy over logits with ignore_index = -1, forward and backward in one pass per row:
//   loss_n = logsumexp(x_n) - x_n[t_n] = log(sum_j e^(x_nj - m_n)) + m_n - x_n[t_n],
//   m_n = max_j x_nj,  d loss_n / d x_n = softmax(x_n) - onehot(t_n),
// mean over the non-ignored rows. The row kernel (max, exp, sum in double, scaling) is Google
// Highway code compiled for AVX-512, AVX2 and scalar and chosen at run time (core/simd.h);
// cross_entropy_forward_backward_reference is the plain loop the tests compare it against.
#include "kernels/cross_entropy.h"

#include <cmath>
#include <vector>

#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cross_entropy.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Writes e[j] = exp(x[j] - m) (if e is non-null; e may alias x) and returns sum_j exp(x[j] - m),
// with the sum accumulated in double. x[j] - m <= 0 (m is the row's maximum), the domain of
// ExpSoftmax (vec_math-inl.h): Highway's polynomial with fewer operations than hn::Exp, a
// difference exp(x - m) below e^-87 becoming 0 instead of a denormal (beside the maximum's 1), and
// a NaN staying NaN, so that a NaN logit gives a NaN loss (hn::Exp maps NaN to 0: before, such a
// row's loss stayed finite unless the NaN was its maximum or its target). Prefetches the row `next`
// (V floats; may be null) meanwhile, a line per 16 floats: the row max reads each row from memory,
// and this pass, which is bound by the exp's arithmetic and reads the row from L2 (a 50304-word row
// is 201 KB), hides that read of the next row.
double ExpSumRow(float* e, const float* x, int V, float m, const float* next) {
    const hn::ScalableTag<float> d;
    const auto vm = hn::Set(d, m);
    int j = 0;
    double sum = 0.0;
#if HWY_TARGET == HWY_SCALAR
    (void)next;  // the scalar path is the slow reference target; no prefetch
    for (; j < V; j++) {
        const float ex = hn::GetLane(ExpSoftmax<true>(d, hn::Sub(hn::Set(d, x[j]), vm)));
        if (e) e[j] = ex;
        sum += ex;
    }
#else
    const int L = int(hn::Lanes(d));
    const hn::Half<decltype(d)> dh;
    const hn::Rebind<double, decltype(dh)> dd;
    auto acc0 = hn::Zero(dd), acc1 = hn::Zero(dd);
    auto add = [&](decltype(vm) ex) {
        acc0 = hn::Add(acc0, hn::PromoteTo(dd, hn::LowerHalf(dh, ex)));
        acc1 = hn::Add(acc1, hn::PromoteTo(dd, hn::UpperHalf(dh, ex)));
    };
    for (; j + L <= V; j += L) {
        if (next && j % 16 == 0) __builtin_prefetch(next + j, 0, 2);
        const auto ex = ExpSoftmax<true>(d, hn::Sub(hn::LoadU(d, x + j), vm));
        if (e) hn::StoreU(ex, d, e + j);
        add(ex);
    }
    if (j < V) {
        const auto mask = hn::FirstN(d, size_t(V - j));
        // Lanes past V read as -inf and give exp = 0.
        const auto xv = hn::IfThenElse(mask, hn::MaskedLoad(mask, d, x + j), hn::Set(d, -INFINITY));
        const auto ex = ExpSoftmax<true>(d, hn::Sub(xv, vm));
        if (e) hn::BlendedStore(ex, mask, d, e + j);
        add(ex);
    }
    sum = hn::GetLane(hn::SumOfLanes(dd, hn::Add(acc0, acc1)));
#endif
    return sum;
}

// One row: returns the loss; writes g (= gscale * (softmax - onehot), g may alias x) if non-null.
// next: the row the thread takes next (prefetched; may be null).
double CrossEntropyRow(float* g, const float* x, int tgt, int V, float gscale, const float* next) {
    const float xt = x[tgt];  // read before g (which may alias x) is overwritten
    const float m = RowMax(x, V);
    const double sum = ExpSumRow(g, x, V, m, next);
    if (g) {
        const hn::ScalableTag<float> d;
        const int L = int(hn::Lanes(d));
        const float s = float(double(gscale) / sum);
        const auto vs = hn::Set(d, s);
        int j = 0;
        for (; j + L <= V; j += L) hn::StoreU(hn::Mul(vs, hn::LoadU(d, g + j)), d, g + j);
        for (; j < V; j++) g[j] *= s;
        g[tgt] -= gscale;
    }
    return std::log(sum) + double(m) - double(xt);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(CrossEntropyRow);

namespace {

// The scalar row of the reference: same contract as CrossEntropyRow, plain loops.
double cross_entropy_row_reference(float* g, const float* x, int tgt, int V, float gscale) {
    const float xt = x[tgt];
    float m = x[0];
    for (int j = 1; j < V; j++) m = x[j] > m ? x[j] : m;
    double sum = 0.0;
    for (int j = 0; j < V; j++) {
        const float ex = std::exp(x[j] - m);
        if (g) g[j] = ex;
        sum += ex;
    }
    if (g) {
        const float s = float(double(gscale) / sum);
        for (int j = 0; j < V; j++) g[j] *= s;
        g[tgt] -= gscale;
    }
    return std::log(sum) + double(m) - double(xt);
}

template <bool kReference>
float cross_entropy_impl(float* dlogits, float* losses, const float* logits, const int32_t* targets,
                         int N, int V, float grad_scale) {
    long n_valid = 0;
    for (int n = 0; n < N; n++) n_valid += targets[n] != -1;
    const float gscale = n_valid > 0 ? float(double(grad_scale) / double(n_valid)) : 0.0f;
    // Per-row losses summed in row order afterwards: the mean does not depend on the thread count.
    std::vector<double> row_loss(N, 0.0);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = logits + (long)n * V;
        float* g = dlogits ? dlogits + (long)n * V : nullptr;
        const int tgt = targets[n];
        if (tgt == -1) {
            if (losses) losses[n] = 0.0f;
            if (g)
                for (int j = 0; j < V; j++) g[j] = 0.0f;
            continue;
        }
        const double loss = kReference ? cross_entropy_row_reference(g, x, tgt, V, gscale)
                                       : HWY_DYNAMIC_DISPATCH(CrossEntropyRow)(
                                             g, x, tgt, V, gscale, n + 1 < N ? x + V : nullptr);
        if (losses) losses[n] = float(loss);
        row_loss[n] = loss;
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += row_loss[n];
    return n_valid > 0 ? float(total / double(n_valid)) : 0.0f;
}

}  // namespace

float cross_entropy_forward_backward(float* dlogits, float* losses, const float* logits,
                                     const int32_t* targets, int N, int V, float grad_scale) {
    return cross_entropy_impl<false>(dlogits, losses, logits, targets, N, V, grad_scale);
}

float cross_entropy_forward_backward_reference(float* dlogits, float* losses, const float* logits,
                                               const int32_t* targets, int N, int V,
                                               float grad_scale) {
    return cross_entropy_impl<true>(dlogits, losses, logits, targets, N, V, grad_scale);
}

}  // namespace t6
#endif  // HWY_ONCE
