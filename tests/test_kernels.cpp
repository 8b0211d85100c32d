// Kernel tests: finite-difference gradient checks for every kernel, flash attention against a
// naive double-precision reference, bit-exact RoPE tables against the official ones, cross-entropy
// against a double reference, and determinism of the embedding scatter-add.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/tpa_contract.h"
#include "test_util.h"

namespace {

using t6::test::random_vector;
using t6::test::rel_error;
using Vec = std::vector<float>;

// ---------------------------------------------------------------------------------------------
// Finite differences. The loss is evaluated in float32 by the kernel and reduced in double. With
// step h = 1e-2 the central difference has truncation error O(h^2 f''') ~ 1e-5 relative for these
// smooth, O(1)-scaled functions and rounding error <= eps_f32 * |L| / h ~ 1e-4 per component
// (measured: correct gradients land at 1e-8..3e-5 relative vector 2-norm error); a wrong term
// (sign, missing factor, wrong index) gives O(0.1..1). Tolerance 1e-3 separates the two with a
// margin of >30x on either side.
constexpr double kFdTol = 1e-3;
constexpr float kStep = 1e-2f;

double dot_loss(const float* out, const Vec& w) {
    double s = 0.0;
    for (size_t i = 0; i < w.size(); i++) s += double(out[i]) * double(w[i]);
    return s;
}

// Numerical gradient of loss() with respect to every entry of x (x is restored afterwards).
std::vector<float> numeric_grad(Vec& x, const std::function<double()>& loss, float h = kStep) {
    std::vector<float> g(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        const float v = x[i];
        x[i] = v + h;
        const double xp = x[i], lp = loss();
        x[i] = v - h;
        const double xm = x[i], lm = loss();
        x[i] = v;
        g[i] = float((lp - lm) / (xp - xm));
    }
    return g;
}

// Checks an analytic gradient against finite differences, and that the gradient is not trivial.
void expect_grad(const Vec& analytic, Vec& x, const std::function<double()>& loss, const char* what,
                 double tol = kFdTol) {
    ASSERT_EQ(analytic.size(), x.size());
    const Vec num = numeric_grad(x, loss);
    double norm = 0.0;
    for (float g : num) norm += double(g) * g;
    EXPECT_GT(std::sqrt(norm), 1e-3) << what << ": numeric gradient is ~0, test is vacuous";
    const double err = rel_error(analytic.data(), num.data(), num.size());
    EXPECT_LT(err, tol) << what << ": analytic vs finite-difference gradient";
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

void rmsnorm_grad_check(bool with_weight) {
    const int N = 3, C = 24;
    const float eps = 1e-6f;
    Vec x = random_vector(N * C, 1), w = random_vector(C, 2), g = random_vector(N * C, 3);
    for (auto& v : w) v += 1.0f;
    const float* wp = with_weight ? w.data() : nullptr;
    Vec out(N * C), rstd(N);
    auto loss = [&] {
        t6::rmsnorm_forward(out.data(), rstd.data(), x.data(), with_weight ? w.data() : nullptr, N,
                            C, eps);
        return dot_loss(out.data(), g);
    };
    loss();
    // Backward accumulates: start from a known offset and remove it afterwards.
    Vec dx(N * C, 0.5f), dw(C, -0.25f);
    t6::rmsnorm_backward(dx.data(), with_weight ? dw.data() : nullptr, g.data(), x.data(), wp,
                         rstd.data(), N, C);
    for (auto& v : dx) v -= 0.5f;
    for (auto& v : dw) v += 0.25f;
    expect_grad(dx, x, loss, "rmsnorm dinp");
    if (with_weight) expect_grad(dw, w, loss, "rmsnorm dweight");
}

TEST(KernelGrad, RmsNormNoWeight) {
    rmsnorm_grad_check(false);
}
TEST(KernelGrad, RmsNormWeight) {
    rmsnorm_grad_check(true);
}

TEST(KernelValue, RmsNormMatchesDouble) {
    const int N = 4, C = 1000;
    Vec x = random_vector(N * C, 7, 3.0f), out(N * C), rstd(N);
    t6::rmsnorm_forward(out.data(), rstd.data(), x.data(), nullptr, N, C, t6::kRmsNormEpsF32);
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += double(x[n * C + c]) * x[n * C + c];
        const double r = 1.0 / std::sqrt(ss / C + double(t6::kRmsNormEpsF32));
        EXPECT_NEAR(rstd[n], r, 2e-7 * r);
        for (int c = 0; c < C; c++)
            EXPECT_NEAR(out[n * C + c], x[n * C + c] * r, 3e-7 * std::fabs(x[n * C + c] * r));
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE

TEST(KernelGrad, Rope) {
    // Strided layout: 3 vectors of dim 8 per token, padded token rows; positions start at 2.
    const int B = 2, T = 5, nvec = 3, dim = 8, pos0 = 2;
    const long vs = 9, ts = nvec * vs + 4;
    const t6::RopeTables tab = t6::make_rope_tables(T + pos0, dim);
    Vec x = random_vector(B * T * ts, 11), g = random_vector(B * T * ts, 12), y(x.size());
    auto loss = [&] {
        y = x;
        t6::rope_forward_inplace(y.data(), B, T, nvec, dim, ts, vs, tab, pos0);
        return dot_loss(y.data(), g);
    };
    Vec dx = g;
    t6::rope_backward_inplace(dx.data(), B, T, nvec, dim, ts, vs, tab, pos0);
    expect_grad(dx, x, loss, "rope");
}

TEST(KernelValue, RopeSignAndPairing) {
    // One vector of dim 4 at position 1: y1 = x1 c + x2 s, y2 = -x1 s + x2 c, pairs (0,2), (1,3).
    const t6::RopeTables tab = t6::make_rope_tables(2, 4);
    Vec x = {1.0f, 2.0f, 3.0f, 4.0f};
    t6::rope_forward_inplace(x.data(), 1, 1, 1, 4, 4, 4, tab, 1);
    const float* c = tab.cos.data() + 2;
    const float* s = tab.sin.data() + 2;
    EXPECT_FLOAT_EQ(x[0], 1.0f * c[0] + 3.0f * s[0]);
    EXPECT_FLOAT_EQ(x[2], -1.0f * s[0] + 3.0f * c[0]);
    EXPECT_FLOAT_EQ(x[1], 2.0f * c[1] + 4.0f * s[1]);
    EXPECT_FLOAT_EQ(x[3], -2.0f * s[1] + 4.0f * c[1]);
}

// Tiny local safetensors reader (F32 only): 8-byte LE header length, JSON header, raw data with
// data_offsets relative to the end of the header. Independent of src/core/safetensors.
std::map<std::string, Vec> read_f32_tensors(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f.good()) << path;
    uint64_t hlen = 0;
    unsigned char len8[8];
    f.read(reinterpret_cast<char*>(len8), 8);
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    std::string header(hlen, '\0');
    f.read(header.data(), (std::streamsize)hlen);
    const auto j = nlohmann::json::parse(header);
    std::map<std::string, Vec> out;
    for (const auto& [name, info] : j.items()) {
        if (name == "__metadata__" || info.at("dtype") != "F32") continue;
        const uint64_t b0 = info.at("data_offsets")[0], b1 = info.at("data_offsets")[1];
        Vec data((b1 - b0) / 4);
        f.seekg((std::streamoff)(8 + hlen + b0));
        f.read(reinterpret_cast<char*>(data.data()), (std::streamsize)(b1 - b0));
        out[name] = std::move(data);
    }
    return out;
}

void expect_rope_tables_match(const std::string& file, int T, int dim) {
    auto tensors = read_f32_tensors(file);
    ASSERT_TRUE(tensors.count("rope.inv_freq") && tensors.count("rope.cos") &&
                tensors.count("rope.sin"))
        << file;
    const Vec& inv = tensors["rope.inv_freq"];
    const Vec& cos = tensors["rope.cos"];
    const Vec& sin = tensors["rope.sin"];
    ASSERT_EQ(inv.size(), size_t(dim / 2));
    ASSERT_EQ(cos.size(), size_t(T * dim / 2));
    ASSERT_EQ(sin.size(), size_t(T * dim / 2));
    const t6::RopeTables tab = t6::make_rope_tables(T, dim);
    // Bit-exact: compare the raw float bits.
    EXPECT_EQ(0, std::memcmp(tab.inv_freq.data(), inv.data(), inv.size() * 4)) << "inv_freq";
    EXPECT_EQ(0, std::memcmp(tab.cos.data(), cos.data(), cos.size() * 4)) << "cos";
    EXPECT_EQ(0, std::memcmp(tab.sin.data(), sin.data(), sin.size() * 4)) << "sin";
}

TEST(KernelConformance, RopeTablesDim16) {
    T6_REQUIRE_SHARED("conformance/t6/io.safetensors");
    expect_rope_tables_match(shared_path_, 16, 16);
}

TEST(KernelConformance, RopeTablesDim8) {
    T6_REQUIRE_SHARED("conformance/llama_mla/io.safetensors");
    expect_rope_tables_match(shared_path_, 16, 8);
}

// ---------------------------------------------------------------------------------------------
// SwiGLU, embedding, TPA contraction, linear

TEST(KernelGrad, SwiGlu) {
    const size_t n = 37;  // not a multiple of the vector width
    Vec a = random_vector(n, 21, 2.0f), b = random_vector(n, 22), g = random_vector(n, 23);
    Vec out(n);
    auto loss = [&] {
        t6::swiglu_forward(out.data(), a.data(), b.data(), n);
        return dot_loss(out.data(), g);
    };
    Vec da(n), db(n);
    t6::swiglu_backward(da.data(), db.data(), g.data(), a.data(), b.data(), n);
    expect_grad(da, a, loss, "swiglu da");
    expect_grad(db, b, loss, "swiglu db");
    t6::swiglu_forward(out.data(), a.data(), b.data(), n);
    for (size_t i = 0; i < n; i++) {
        const double z = a[i], ref = z / (1.0 + std::exp(-z)) * b[i];
        EXPECT_NEAR(out[i], ref, 1e-6 * (1.0 + std::fabs(ref)));
    }
}

TEST(KernelGrad, Embedding) {
    const int N = 9, C = 5, V = 6;
    std::vector<int32_t> tok = {0, 3, 3, 5, 1, 3, 0, 2, 5};
    Vec wte = random_vector(V * C, 31), g = random_vector(N * C, 32), out(N * C);
    auto loss = [&] {
        t6::embedding_forward(out.data(), tok.data(), wte.data(), N, C);
        return dot_loss(out.data(), g);
    };
    Vec dw(V * C, 1.0f);  // accumulates
    t6::embedding_backward(dw.data(), g.data(), tok.data(), N, C, V);
    for (auto& v : dw) v -= 1.0f;
    expect_grad(dw, wte, loss, "embedding dwte");
}

TEST(KernelGrad, TpaContractStrided) {
    // A and B live in one fused row: [A (H*R) | B (R*D) | 3 pad].
    const int N = 4, H = 3, R = 2, D = 5;
    const long row = H * R + R * D + 3;
    const float scale = 1.0f / R;
    Vec buf = random_vector(N * row, 41), g = random_vector(N * H * D, 42), out(N * H * D);
    auto loss = [&] {
        t6::tpa_contract_forward(out.data(), buf.data(), row, buf.data() + H * R, row, N, H, R, D,
                                 scale);
        return dot_loss(out.data(), g);
    };
    Vec grad(N * row, 7.0f);  // sentinel in the pad columns
    t6::tpa_contract_backward(grad.data(), grad.data() + H * R, g.data(), buf.data(), row,
                              buf.data() + H * R, row, N, H, R, D, scale);
    for (int n = 0; n < N; n++)
        for (long c = H * R + R * D; c < row; c++) {
            EXPECT_EQ(grad[n * row + c], 7.0f) << "pad column overwritten";
            grad[n * row + c] = 0.0f;
        }
    expect_grad(grad, buf, loss, "tpa_contract dA/dB");
}

TEST(KernelGrad, Linear) {
    const int N = 4, C = 6, OC = 5;
    Vec x = random_vector(N * C, 51), W = random_vector(OC * C, 52), g = random_vector(N * OC, 53);
    Vec out(N * OC);
    auto loss = [&] {
        t6::linear_forward(out.data(), x.data(), W.data(), N, C, OC);
        return dot_loss(out.data(), g);
    };
    Vec dx(N * C, 0.0f), dW(OC * C, 0.0f);
    t6::linear_backward(dx.data(), dW.data(), g.data(), x.data(), W.data(), N, C, OC);
    expect_grad(dx, x, loss, "linear dinp");
    expect_grad(dW, W, loss, "linear dW");
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

double ce_reference(const Vec& logits, const std::vector<int32_t>& tgt, int N, int V, Vec* grad,
                    float grad_scale) {
    int valid = 0;
    for (int t : tgt) valid += t != -1;
    double total = 0.0;
    if (grad) grad->assign((size_t)N * V, 0.0f);
    for (int n = 0; n < N; n++) {
        if (tgt[n] == -1) continue;
        const float* x = logits.data() + (long)n * V;
        double m = x[0];
        for (int j = 0; j < V; j++) m = std::max(m, double(x[j]));
        double s = 0;
        for (int j = 0; j < V; j++) s += std::exp(double(x[j]) - m);
        total += std::log(s) + m - x[tgt[n]];
        if (grad)
            for (int j = 0; j < V; j++)
                (*grad)[(long)n * V + j] =
                    float(grad_scale * (std::exp(double(x[j]) - m) / s - (j == tgt[n])) / valid);
    }
    return valid ? total / valid : 0.0;
}

TEST(KernelGrad, CrossEntropyWithIgnored) {
    const int N = 5, V = 7;
    std::vector<int32_t> tgt = {2, -1, 0, 6, -1};
    Vec logits = random_vector(N * V, 61, 2.0f);
    const float gs = 0.7f;
    Vec dl(N * V);
    t6::cross_entropy_forward_backward(dl.data(), nullptr, logits.data(), tgt.data(), N, V, gs);
    auto loss = [&] {
        return double(gs) * t6::cross_entropy_forward_backward(nullptr, nullptr, logits.data(),
                                                               tgt.data(), N, V, 1.0f);
    };
    expect_grad(dl, logits, loss, "cross_entropy dlogits");
    for (int j = 0; j < V; j++) EXPECT_EQ(dl[1 * V + j], 0.0f) << "ignored row must be zero";
}

TEST(KernelValue, CrossEntropyMatchesDouble) {
    const int N = 6, V = 1003;  // V: vector body plus a scalar tail
    std::vector<int32_t> tgt = {5, -1, 1002, 0, 17, -1};
    Vec logits = random_vector(N * V, 71, 4.0f);
    Vec ref_grad;
    const double ref = ce_reference(logits, tgt, N, V, &ref_grad, 2.0f);
    Vec dl(N * V), losses(N);
    const float loss = t6::cross_entropy_forward_backward(dl.data(), losses.data(), logits.data(),
                                                          tgt.data(), N, V, 2.0f);
    EXPECT_NEAR(loss, ref, 1e-6 * std::fabs(ref));
    EXPECT_EQ(losses[1], 0.0f);
    EXPECT_EQ(losses[5], 0.0f);
    double mean = 0;
    for (float l : losses) mean += l;
    EXPECT_NEAR(mean / 4, ref, 1e-6 * std::fabs(ref));
    EXPECT_LT(rel_error(dl.data(), ref_grad.data(), dl.size()), 1e-6);
    // In place: dlogits aliases logits.
    Vec inplace = logits;
    const float loss2 = t6::cross_entropy_forward_backward(inplace.data(), nullptr, inplace.data(),
                                                           tgt.data(), N, V, 2.0f);
    EXPECT_EQ(loss2, loss);
    EXPECT_EQ(0, std::memcmp(inplace.data(), dl.data(), dl.size() * 4));
}

TEST(KernelValue, CrossEntropyAllIgnored) {
    const int N = 3, V = 40;
    std::vector<int32_t> tgt = {-1, -1, -1};
    Vec logits = random_vector(N * V, 81), dl(N * V, 5.0f), losses(N, 5.0f);
    const float loss = t6::cross_entropy_forward_backward(dl.data(), losses.data(), logits.data(),
                                                          tgt.data(), N, V, 1.0f);
    EXPECT_EQ(loss, 0.0f);
    for (float v : dl) EXPECT_EQ(v, 0.0f);
    for (float v : losses) EXPECT_EQ(v, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// Attention

// A fused per-token buffer [q (Hq*D) | k (Hkv*D) | v (Hkv*Dv) | pad], as a fused QKV projection.
struct FusedQkv {
    t6::AttnDims d;
    long row = 0, koff = 0, voff = 0;
    Vec buf;
    FusedQkv(int B, int T, int Hq, int Hkv, int D, int Dv, int pad, unsigned seed) {
        d.B = B, d.T = T, d.Hq = Hq, d.Hkv = Hkv, d.D = D, d.Dv = Dv;
        koff = (long)Hq * D;
        voff = koff + (long)Hkv * D;
        row = voff + (long)Hkv * Dv + pad;
        d.q_stride = d.k_stride = d.v_stride = row;
        d.scale = 1.0f / std::sqrt(float(D));
        buf = random_vector((size_t)B * T * row, seed);
    }
    const float* q() const { return buf.data(); }
    const float* k() const { return buf.data() + koff; }
    const float* v() const { return buf.data() + voff; }
    size_t out_size() const { return (size_t)d.B * d.T * d.Hq * d.Dv; }
};

void attention_grad_check(int B, int T, int Hq, int Hkv, int D, int Dv, int pad) {
    FusedQkv f(B, T, Hq, Hkv, D, Dv, pad, 91);
    Vec g = random_vector(f.out_size(), 92), out(f.out_size()), lse((size_t)B * Hq * T);
    auto loss = [&] {
        t6::attention_forward(out.data(), lse.data(), f.q(), f.k(), f.v(), f.d);
        return dot_loss(out.data(), g);
    };
    loss();
    Vec grad(f.buf.size(), 7.0f);  // sentinel: pad columns must stay untouched
    t6::attention_backward(grad.data(), grad.data() + f.koff, grad.data() + f.voff, g.data(),
                           out.data(), lse.data(), f.q(), f.k(), f.v(), f.d);
    for (long r = 0; r < (long)B * T; r++)
        for (long c = f.row - pad; c < f.row; c++) {
            EXPECT_EQ(grad[r * f.row + c], 7.0f) << "pad column overwritten";
            grad[r * f.row + c] = 0.0f;
        }
    expect_grad(grad, f.buf, loss, "attention dq/dk/dv");
}

TEST(KernelGrad, AttentionMha) {
    attention_grad_check(2, 5, 2, 2, 4, 4, 0);
}
TEST(KernelGrad, AttentionGqa) {
    attention_grad_check(2, 6, 4, 2, 4, 4, 3);
}
TEST(KernelGrad, AttentionMqa) {
    attention_grad_check(1, 6, 4, 1, 4, 4, 2);
}
TEST(KernelGrad, AttentionDvDiffers) {
    attention_grad_check(2, 5, 4, 2, 6, 3, 1);
}
TEST(KernelGrad, AttentionMultiTile) {
    attention_grad_check(1, 70, 2, 1, 3, 2, 1);
}

// Naive reference in double: full causal softmax, forward and backward.
struct NaiveAttn {
    std::vector<double> out, lse, dq, dk, dv;
};

NaiveAttn naive_attention(const FusedQkv& f, const Vec& dout) {
    const auto& d = f.d;
    const int T = d.T, D = d.D, Dv = d.Dv, group = d.Hq / d.Hkv;
    NaiveAttn r;
    r.out.assign(f.out_size(), 0.0);
    r.lse.assign((size_t)d.B * d.Hq * T, 0.0);
    r.dq.assign(f.buf.size(), 0.0);
    r.dk.assign(f.buf.size(), 0.0);
    r.dv.assign(f.buf.size(), 0.0);
    auto Q = [&](int b, int t, int h) { return (long)(b * T + t) * f.row + (long)h * D; };
    auto K = [&](int b, int t, int h) { return (long)(b * T + t) * f.row + f.koff + (long)h * D; };
    auto Vv = [&](int b, int t, int h) {
        return (long)(b * T + t) * f.row + f.voff + (long)h * Dv;
    };
    auto O = [&](int b, int t, int h) { return ((long)(b * T + t) * d.Hq + h) * Dv; };
    std::vector<double> p(T), dp(T);
    for (int b = 0; b < d.B; b++)
        for (int h = 0; h < d.Hq; h++) {
            const int kh = h / group;
            for (int i = 0; i < T; i++) {
                double m = -INFINITY;
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int c = 0; c < D; c++)
                        s += double(f.buf[Q(b, i, h) + c]) * f.buf[K(b, j, kh) + c];
                    p[j] = s * d.scale;
                    m = std::max(m, p[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) sum += std::exp(p[j] - m);
                r.lse[((long)b * d.Hq + h) * T + i] = m + std::log(sum);
                for (int j = 0; j <= i; j++) p[j] = std::exp(p[j] - m) / sum;
                for (int j = 0; j <= i; j++)
                    for (int c = 0; c < Dv; c++)
                        r.out[O(b, i, h) + c] += p[j] * f.buf[Vv(b, j, kh) + c];
                // Backward: dP = dO V^T, dS = P (dP - sum_j P dP).
                double pdp = 0;
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int c = 0; c < Dv; c++)
                        s += double(dout[O(b, i, h) + c]) * f.buf[Vv(b, j, kh) + c];
                    dp[j] = s;
                    pdp += p[j] * s;
                }
                for (int j = 0; j <= i; j++) {
                    const double ds = p[j] * (dp[j] - pdp) * d.scale;
                    for (int c = 0; c < D; c++) {
                        r.dq[Q(b, i, h) + c] += ds * f.buf[K(b, j, kh) + c];
                        r.dk[K(b, j, kh) + c] += ds * f.buf[Q(b, i, h) + c];
                    }
                    for (int c = 0; c < Dv; c++)
                        r.dv[Vv(b, j, kh) + c] += p[j] * dout[O(b, i, h) + c];
                }
            }
        }
    return r;
}

double rel_error_d(const float* a, const std::vector<double>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < b.size(); i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

TEST(KernelValue, FlashAttentionMatchesNaive) {
    for (int D : {16, 64}) {
        for (int T : {1, 7, 64, 130, 257}) {
            SCOPED_TRACE("D=" + std::to_string(D) + " T=" + std::to_string(T));
            FusedQkv f(2, T, 4, 2, D, D, 0, 100 + T + D);
            Vec dout = random_vector(f.out_size(), 200 + T);
            Vec out(f.out_size()), lse((size_t)2 * 4 * T), grad(f.buf.size(), 0.0f);
            t6::attention_forward(out.data(), lse.data(), f.q(), f.k(), f.v(), f.d);
            t6::attention_backward(grad.data(), grad.data() + f.koff, grad.data() + f.voff,
                                   dout.data(), out.data(), lse.data(), f.q(), f.k(), f.v(), f.d);
            const NaiveAttn ref = naive_attention(f, dout);
            EXPECT_LT(rel_error_d(out.data(), ref.out), 1e-5) << "out";
            EXPECT_LT(rel_error_d(lse.data(), ref.lse), 1e-5) << "lse";
            // Split the fused gradient buffer into its q/k/v parts for comparison.
            Vec gq(grad.size(), 0.0f), gk(grad.size(), 0.0f), gv(grad.size(), 0.0f);
            for (size_t r = 0; r < grad.size() / f.row; r++)
                for (long c = 0; c < f.row; c++) {
                    const size_t i = r * f.row + c;
                    (c < f.koff ? gq : c < f.voff ? gk : gv)[i] = grad[i];
                }
            EXPECT_LT(rel_error_d(gq.data(), ref.dq), 1e-5) << "dq";
            EXPECT_LT(rel_error_d(gk.data(), ref.dk), 1e-5) << "dk";
            EXPECT_LT(rel_error_d(gv.data(), ref.dv), 1e-5) << "dv";
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism

TEST(KernelDeterminism, EmbeddingBackwardThreadCountIndependent) {
    const int N = 4096, C = 200, V = 50;
    std::vector<int32_t> tok(N);
    for (int n = 0; n < N; n++) tok[n] = (n * 7919) % V;
    Vec g = random_vector((size_t)N * C, 301);
    const int saved = omp_get_max_threads();
    Vec d1((size_t)V * C, 0.0f), d2((size_t)V * C, 0.0f);
    omp_set_num_threads(1);
    t6::embedding_backward(d1.data(), g.data(), tok.data(), N, C, V);
    omp_set_num_threads(2);
    t6::embedding_backward(d2.data(), g.data(), tok.data(), N, C, V);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(d1.data(), d2.data(), d1.size() * 4));
}

}  // namespace
