#include "kernels/cross_entropy.h"

#include <cmath>
#include <vector>

#include "kernels/vec_math.h"

namespace t6 {

namespace {

// Writes e[j] = exp(x[j] - m) (if e is non-null; e may alias x) and returns sum_j exp(x[j] - m),
// with the sum accumulated in double.
double exp_sum_row(float* e, const float* x, int V, float m) {
    int j = 0;
    double sum = 0.0;
#ifdef __AVX512F__
    const __m512 vm = _mm512_set1_ps(m);
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (; j + 16 <= V; j += 16) {
        const __m512 ex = detail::exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        if (e) _mm512_storeu_ps(e + j, ex);
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(ex)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(ex, 1)));
    }
    sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
#endif
    for (; j < V; j++) {
        const float ex = std::exp(x[j] - m);
        if (e) e[j] = ex;
        sum += ex;
    }
    return sum;
}

float max_row(const float* x, int V) {
    float m = -INFINITY;
    int j = 0;
#ifdef __AVX512F__
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (; j + 16 <= V; j += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(x + j));
    m = _mm512_reduce_max_ps(acc);
#endif
    for (; j < V; j++) m = x[j] > m ? x[j] : m;
    return m;
}

}  // namespace

// loss_n = logsumexp(x_n) - x_n[target];  d loss_n / d x_n = softmax(x_n) - onehot(target).
float cross_entropy_forward_backward(float* dlogits, float* losses, const float* logits,
                                     const int32_t* targets, int N, int V, float grad_scale) {
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
        const float xt = x[tgt];  // read before g (which may alias x) is overwritten
        const float m = max_row(x, V);
        const double sum = exp_sum_row(g, x, V, m);
        const double loss = std::log(sum) + double(m) - double(xt);
        if (losses) losses[n] = float(loss);
        row_loss[n] = loss;
        if (g) {
            const float s = float(double(gscale) / sum);
            for (int j = 0; j < V; j++) g[j] *= s;
            g[tgt] -= gscale;
        }
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += row_loss[n];
    return n_valid > 0 ? float(total / double(n_valid)) : 0.0f;
}

}  // namespace t6
