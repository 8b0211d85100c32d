// Every Highway target of the training/prefill kernels against their plain scalar references:
// attention forward/backward (vs a double reference), cross-entropy, SwiGLU, RMSNorm, RoPE, the
// TPA contraction and AdamW, for each target simd_available_targets() lists (set with
// ScopedSimdTarget), with shapes that are not multiples of any vector width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/simd.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/tpa_contract.h"
#include "test_util.h"
#include "train/adamw.h"

namespace t6 {
namespace {

using test::random_vector;

// max |a - b| / max |b|: relative to the tensor's scale, so entries near zero do not dominate.
double rel_max(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < a.size(); i++) {
        num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
        den = std::max(den, std::fabs(double(b[i])));
    }
    return den > 0.0 ? num / den : num;
}

// Highway's name for the target each t6 target must dispatch to.
std::string highway_name(SimdTarget t) {
    return simd_highway_name_of(t);
}

// Runs body(target) once per available target, with that target set and named in failures.
template <class F>
void for_each_target(F body) {
    for (SimdTarget t : simd_available_targets()) {
        ScopedSimdTarget scoped(t);
        SCOPED_TRACE(std::string("target ") + simd_target_name(t));
        ASSERT_EQ(simd_highway_target_name(), highway_name(t));
        body(t);
    }
}

constexpr double kTolF32 = 1e-5;  // plain float32 arithmetic, other summation order
constexpr double kTolExp = 2e-5;  // exp-based kernels vs a double (or std::exp) reference

TEST(SimdTrain, TargetsIncludeScalar) {
    const auto ts = simd_available_targets();
    ASSERT_FALSE(ts.empty());
    EXPECT_EQ(ts.front(), SimdTarget::scalar);
}

void check_attention(int B, int T, int Hq, int Hkv, int D, int Dv) {
    AttnDims d;
    d.B = B, d.T = T, d.Hq = Hq, d.Hkv = Hkv, d.D = D, d.Dv = Dv;
    // q, k, v as slots of one fused row (with padding) as the models use them.
    const long row = (long)Hq * D + (long)Hkv * D + (long)Hkv * Dv + 3;
    d.q_stride = d.k_stride = d.v_stride = row;
    d.scale = 1.0f / std::sqrt(float(D));
    const size_t n = (size_t)B * T * row;
    const auto qkv = random_vector(n, 11, 1.5f);
    const float* q = qkv.data();
    const float* k = q + (long)Hq * D;
    const float* v = k + (long)Hkv * D;
    const size_t nout = (size_t)B * T * Hq * Dv, nlse = (size_t)B * Hq * T;
    const auto dout = random_vector(nout, 12);
    std::vector<float> out_ref(nout), lse_ref(nlse), g_ref(n, 0.0f);
    attention_forward_reference(out_ref.data(), lse_ref.data(), q, k, v, d);
    attention_backward_reference(g_ref.data(), g_ref.data() + (long)Hq * D,
                                 g_ref.data() + (long)Hq * D + (long)Hkv * D, dout.data(), q, k, v,
                                 d);
    for_each_target([&](SimdTarget) {
        std::vector<float> out(nout), lse(nlse), g(n, 0.0f);
        attention_forward(out.data(), lse.data(), q, k, v, d);
        EXPECT_LT(rel_max(out, out_ref), kTolExp);
        EXPECT_LT(rel_max(lse, lse_ref), kTolExp);
        attention_backward(g.data(), g.data() + (long)Hq * D,
                           g.data() + (long)Hq * D + (long)Hkv * D, dout.data(), out.data(),
                           lse.data(), q, k, v, d);
        EXPECT_LT(rel_max(g, g_ref), kTolExp);
    });
}

TEST(SimdTrain, AttentionGqaOddShapes) {
    check_attention(2, 75, 4, 2, 20, 13);
}

TEST(SimdTrain, AttentionMhaMultiTile) {
    check_attention(1, 141, 2, 2, 64, 37);
}

// A last key tile of 36 tokens: whole 8- and 16-token blocks transposed in registers (K^T, V^T)
// followed by a remainder, and head sizes a multiple of both vector widths.
TEST(SimdTrain, AttentionPartialTileOfWholeBlocks) {
    check_attention(2, 100, 3, 1, 48, 32);
}

// A NaN score is propagated as torch's softmax propagates it: a NaN in one cached key makes the
// output of every query that attends to it NaN (and its gradients), and leaves earlier queries
// finite, on every target.
TEST(SimdTrain, AttentionPropagatesANanScore) {
    AttnDims d;
    d.B = 1, d.T = 80, d.Hq = 2, d.Hkv = 2, d.D = 32, d.Dv = 32;
    d.q_stride = d.k_stride = d.v_stride = (long)d.Hq * d.D;
    d.scale = 1.0f / std::sqrt(float(d.D));
    const size_t n = (size_t)d.T * d.Hq * d.D;
    const auto q = random_vector(n, 31), v = random_vector(n, 33), dout = random_vector(n, 34);
    auto k = random_vector(n, 32);
    const int bad = 70;  // key token 70 of head 1: in the second key tile
    k[(size_t)bad * d.k_stride + d.D + 5] = std::nanf("");
    for_each_target([&](SimdTarget t) {
        std::vector<float> out(n), lse((size_t)d.Hq * d.T), dq(n), dk(n), dv(n);
        attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), d);
        for (int i = 0; i < d.T; i++)
            for (int h = 0; h < d.Hq; h++) {
                const float o = out[(size_t)i * d.Hq * d.Dv + (size_t)h * d.Dv];
                EXPECT_EQ(std::isnan(o), h == 1 && i >= bad)
                    << simd_target_name(t) << " query " << i << " head " << h;
            }
        attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(),
                           q.data(), k.data(), v.data(), d);
        EXPECT_TRUE(std::isnan(dq[(size_t)bad * d.q_stride + d.D])) << simd_target_name(t);
        EXPECT_FALSE(std::isnan(dq[(size_t)3 * d.q_stride + d.D])) << simd_target_name(t);
    });
}

TEST(SimdTrain, CrossEntropy) {
    const int N = 9, V = 1003;
    const auto logits = random_vector((size_t)N * V, 21, 4.0f);
    std::vector<int32_t> tgt(N);
    for (int n = 0; n < N; n++) tgt[n] = (n * 397 + 5) % V;
    tgt[3] = -1;
    std::vector<float> g_ref((size_t)N * V), l_ref(N);
    const float loss_ref = cross_entropy_forward_backward_reference(
        g_ref.data(), l_ref.data(), logits.data(), tgt.data(), N, V, 0.7f);
    // A double-precision loss as well (the reference uses float std::exp).
    double want = 0.0;
    for (int n = 0; n < N; n++) {
        if (tgt[n] < 0) continue;
        const float* x = logits.data() + (long)n * V;
        double m = *std::max_element(x, x + V), s = 0.0;
        for (int j = 0; j < V; j++) s += std::exp(double(x[j]) - m);
        want += std::log(s) + m - double(x[tgt[n]]);
    }
    want /= N - 1;
    EXPECT_NEAR(loss_ref, want, 1e-5 * std::fabs(want));
    for_each_target([&](SimdTarget) {
        std::vector<float> g((size_t)N * V), l(N);
        const float loss = cross_entropy_forward_backward(g.data(), l.data(), logits.data(),
                                                          tgt.data(), N, V, 0.7f);
        EXPECT_NEAR(loss, want, 1e-5 * std::fabs(want));
        EXPECT_LT(rel_max(l, l_ref), kTolExp);
        EXPECT_LT(rel_max(g, g_ref), kTolExp);
        // In place (dlogits aliasing logits) gives the same, and no dlogits the same loss.
        std::vector<float> inplace = logits;
        cross_entropy_forward_backward(inplace.data(), nullptr, inplace.data(), tgt.data(), N, V,
                                       0.7f);
        EXPECT_EQ(inplace, g);
        EXPECT_EQ(
            cross_entropy_forward_backward(nullptr, nullptr, logits.data(), tgt.data(), N, V, 0.7f),
            loss);
    });
}

// Every target: a NaN logit makes its row's loss and gradient NaN (and the mean loss), never a
// finite number that hides the divergence; logits far below the row's maximum (the exp's
// argument past -87, where the kernels' exp flushes to 0) get a gradient of 0 like the reference.
TEST(SimdTrain, CrossEntropyNaNAndFarBelowTheMaximum) {
    const int N = 4, V = 1003;
    auto logits = random_vector((size_t)N * V, 22, 4.0f);
    for (int j = 0; j < V; j += 3) logits[(size_t)1 * V + j] = -200.0f + float(j % 7);
    logits[(size_t)2 * V + 500] = std::nanf("");
    const std::vector<int32_t> tgt = {7, 9, 11, 13};
    std::vector<float> g_ref((size_t)N * V), l_ref(N);
    cross_entropy_forward_backward_reference(g_ref.data(), l_ref.data(), logits.data(), tgt.data(),
                                             N, V, 1.0f);
    for_each_target([&](SimdTarget t) {
        std::vector<float> g((size_t)N * V), l(N);
        const float loss = cross_entropy_forward_backward(g.data(), l.data(), logits.data(),
                                                          tgt.data(), N, V, 1.0f);
        EXPECT_TRUE(std::isnan(loss)) << simd_target_name(t);
        EXPECT_TRUE(std::isnan(l[2])) << simd_target_name(t);
        EXPECT_TRUE(std::isnan(g[(size_t)2 * V + 3])) << simd_target_name(t);
        for (int n : {0, 1, 3}) {
            EXPECT_NEAR(l[n], l_ref[n], 1e-5f * std::fabs(l_ref[n])) << simd_target_name(t);
            for (int j = 0; j < V; j++) {
                const size_t i = (size_t)n * V + j;
                ASSERT_NEAR(g[i], g_ref[i], 1e-5f * std::fabs(g_ref[i]) + 1e-12f)
                    << simd_target_name(t) << " row " << n << " column " << j;
            }
        }
        for (int j = 0; j < V; j += 3) {
            if (j != tgt[1]) {
                EXPECT_EQ(g[(size_t)1 * V + j], 0.0f) << simd_target_name(t) << " column " << j;
            }
        }
    });
}

TEST(SimdTrain, SwiGlu) {
    const size_t n = 2 * 4096 + 37;
    auto a = random_vector(n, 31, 6.0f);
    a[0] = -120.0f, a[1] = 95.0f;  // beyond the exp clamp
    const auto b = random_vector(n, 32), g = random_vector(n, 33);
    std::vector<float> out_ref(n), da_ref(n), db_ref(n);
    swiglu_forward_reference(out_ref.data(), a.data(), b.data(), n);
    swiglu_backward_reference(da_ref.data(), db_ref.data(), g.data(), a.data(), b.data(), n);
    for_each_target([&](SimdTarget) {
        std::vector<float> out(n), da(n), db(n);
        swiglu_forward(out.data(), a.data(), b.data(), n);
        swiglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
        EXPECT_LT(rel_max(out, out_ref), kTolExp);
        EXPECT_LT(rel_max(da, da_ref), kTolExp);
        EXPECT_LT(rel_max(db, db_ref), kTolExp);
    });
}

TEST(SimdTrain, RmsNorm) {
    const int N = 19, C = 77;
    const auto x = random_vector((size_t)N * C, 41, 2.0f), w = random_vector(C, 42);
    const auto dy = random_vector((size_t)N * C, 43), dx0 = random_vector((size_t)N * C, 44);
    const auto dw0 = random_vector(C, 45);
    for (const float* weight : {(const float*)nullptr, w.data()}) {
        SCOPED_TRACE(weight ? "weight" : "no weight");
        std::vector<float> y_ref((size_t)N * C), r_ref(N), dx_ref = dx0, dw_ref = dw0;
        rmsnorm_forward_reference(y_ref.data(), r_ref.data(), x.data(), weight, N, C, 1e-6f);
        rmsnorm_backward_reference(dx_ref.data(), dw_ref.data(), dy.data(), x.data(), weight,
                                   r_ref.data(), N, C);
        for_each_target([&](SimdTarget) {
            std::vector<float> y((size_t)N * C), r(N), dx = dx0, dw = dw0;
            rmsnorm_forward(y.data(), r.data(), x.data(), weight, N, C, 1e-6f);
            rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), weight, r.data(), N, C);
            EXPECT_LT(rel_max(y, y_ref), kTolF32);
            EXPECT_LT(rel_max(r, r_ref), kTolF32);
            EXPECT_LT(rel_max(dx, dx_ref), kTolF32);
            EXPECT_LT(rel_max(dw, dw_ref), kTolF32);
        });
    }
}

TEST(SimdTrain, Rope) {
    const int B = 2, T = 9, nvec = 3, dim = 22, pos0 = 3;
    const long vec_stride = dim + 1, token_stride = nvec * vec_stride + 5;
    const RopeTables tab = make_rope_tables(32, dim);
    const auto x0 = random_vector((size_t)B * T * token_stride, 51);
    std::vector<float> f_ref = x0, b_ref = x0;
    rope_forward_inplace_reference(f_ref.data(), B, T, nvec, dim, token_stride, vec_stride, tab,
                                   pos0);
    rope_backward_inplace_reference(b_ref.data(), B, T, nvec, dim, token_stride, vec_stride, tab,
                                    pos0);
    for_each_target([&](SimdTarget) {
        std::vector<float> f = x0, b = x0;
        rope_forward_inplace(f.data(), B, T, nvec, dim, token_stride, vec_stride, tab, pos0);
        rope_backward_inplace(b.data(), B, T, nvec, dim, token_stride, vec_stride, tab, pos0);
        EXPECT_LT(rel_max(f, f_ref), kTolF32);
        EXPECT_LT(rel_max(b, b_ref), kTolF32);
    });
}

// A decoding step's shapes, which run on the calling thread (core/parallel_items.h): a few
// sequences of one or two tokens for RoPE (at most one work item's 8 tokens in all), one row for
// RMSNorm, one chunk for SwiGLU, one token for the embedding. Beside them a shape of two items
// each, which runs on the OpenMP threads.
TEST(SimdTrain, OneRowShapesOfADecodingStep) {
    const int nvec = 3, dim = 22, pos0 = 5;
    const long vec_stride = dim + 1, token_stride = nvec * vec_stride + 5;
    const RopeTables tab = make_rope_tables(32, dim);
    for (const auto& [B, T] : {std::pair{1, 1}, {4, 1}, {3, 2}, {8, 1}, {9, 1}, {2, 8}}) {
        SCOPED_TRACE("rope B " + std::to_string(B) + " T " + std::to_string(T));
        const auto x0 = random_vector((size_t)B * T * token_stride, 71 + B);
        std::vector<float> ref = x0;
        rope_forward_inplace_reference(ref.data(), B, T, nvec, dim, token_stride, vec_stride, tab,
                                       pos0);
        for_each_target([&](SimdTarget) {
            std::vector<float> f = x0;
            rope_forward_inplace(f.data(), B, T, nvec, dim, token_stride, vec_stride, tab, pos0);
            EXPECT_LT(rel_max(f, ref), kTolF32);
        });
    }
    for (const int N : {1, 16, 17}) {
        SCOPED_TRACE("rmsnorm N " + std::to_string(N));
        const int C = 77;
        const auto x = random_vector((size_t)N * C, 81, 2.0f), w = random_vector(C, 82);
        std::vector<float> y_ref((size_t)N * C), r_ref(N);
        rmsnorm_forward_reference(y_ref.data(), r_ref.data(), x.data(), w.data(), N, C, 1e-6f);
        for_each_target([&](SimdTarget) {
            std::vector<float> y((size_t)N * C), r(N);
            rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), N, C, 1e-6f);
            EXPECT_LT(rel_max(y, y_ref), kTolF32);
            EXPECT_LT(rel_max(r, r_ref), kTolF32);
        });
    }
    for (const size_t n : {size_t(2048), size_t(4096 + 5)}) {
        SCOPED_TRACE("swiglu n " + std::to_string(n));
        const auto a = random_vector(n, 91, 6.0f), b = random_vector(n, 92);
        std::vector<float> ref(n);
        swiglu_forward_reference(ref.data(), a.data(), b.data(), n);
        for_each_target([&](SimdTarget) {
            std::vector<float> out(n);
            swiglu_forward(out.data(), a.data(), b.data(), n);
            EXPECT_LT(rel_max(out, ref), kTolExp);
        });
    }
    const int C = 13;
    const auto wte = random_vector(7 * C, 93);
    for (const std::vector<int32_t>& tok :
         {std::vector<int32_t>{6}, std::vector<int32_t>{2, 0, 6}}) {
        std::vector<float> out(tok.size() * C);
        embedding_forward(out.data(), tok.data(), wte.data(), int(tok.size()), C);
        for (size_t n = 0; n < tok.size(); n++)
            for (int c = 0; c < C; c++) EXPECT_EQ(out[n * C + c], wte[size_t(tok[n]) * C + c]);
    }
}

TEST(SimdTrain, TpaContract) {
    const int N = 13, H = 5, R = 3, D = 19;
    const long as = H * R + 4, bs = (long)R * D + 2;
    const float scale = 1.0f / R;
    const auto A = random_vector((size_t)N * as, 61), Bf = random_vector((size_t)N * bs, 62);
    const auto g = random_vector((size_t)N * H * D, 63);
    std::vector<float> out_ref((size_t)N * H * D), dA_ref(A.size(), 0.0f), dB_ref(Bf.size(), 0.0f);
    tpa_contract_forward_reference(out_ref.data(), A.data(), as, Bf.data(), bs, N, H, R, D, scale);
    tpa_contract_backward_reference(dA_ref.data(), dB_ref.data(), g.data(), A.data(), as, Bf.data(),
                                    bs, N, H, R, D, scale);
    for_each_target([&](SimdTarget) {
        std::vector<float> out(out_ref.size()), dA(A.size(), 0.0f), dB(Bf.size(), 0.0f);
        tpa_contract_forward(out.data(), A.data(), as, Bf.data(), bs, N, H, R, D, scale);
        tpa_contract_backward(dA.data(), dB.data(), g.data(), A.data(), as, Bf.data(), bs, N, H, R,
                              D, scale);
        EXPECT_LT(rel_max(out, out_ref), kTolF32);
        EXPECT_LT(rel_max(dA, dA_ref), kTolF32);
        EXPECT_LT(rel_max(dB, dB_ref), kTolF32);
    });
}

TEST(SimdTrain, AdamW) {
    const size_t n = 3 * 8192 + 1001;
    const auto p0 = random_vector(n, 71), g = random_vector(n, 72, 0.1f);
    AdamWConfig cfg;
    std::vector<float> p_ref = p0;
    AdamW ref(n, cfg);
    for (int s = 0; s < 3; s++) ref.step_reference(p_ref.data(), g.data(), 1e-3 * (s + 1), 0.9f);
    for_each_target([&](SimdTarget) {
        std::vector<float> p = p0;
        AdamW opt(n, cfg);
        for (int s = 0; s < 3; s++) opt.step(p.data(), g.data(), 1e-3 * (s + 1), 0.9f);
        // Not bit-exact: the compiler may fuse a multiply and an add of the vector code.
        EXPECT_LT(rel_max(p, p_ref), kTolF32);
        const std::vector<float> m(opt.exp_avg(), opt.exp_avg() + n),
            m_ref(ref.exp_avg(), ref.exp_avg() + n), v(opt.exp_avg_sq(), opt.exp_avg_sq() + n),
            v_ref(ref.exp_avg_sq(), ref.exp_avg_sq() + n);
        EXPECT_LT(rel_max(m, m_ref), kTolF32);
        EXPECT_LT(rel_max(v, v_ref), kTolF32);
    });
}

}  // namespace
}  // namespace t6
