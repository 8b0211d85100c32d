#include "model/convert_tpa.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/linalg.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/tpa_contract.h"

namespace t6 {

namespace {

double sum_sq(const float* a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += double(a[i]) * a[i];
    return s;
}

// Solves the normal equations of one ALS half-step. The unknowns are M vectors w_m of R*C
// numbers (w_m = [w_{m,0}; ...; w_{m,R-1}], each of length C); the prediction for token n is
// linear in them, with Gram matrix
//   G[(r,c),(r',c')] = (1/R^2) sum_n g[n,r,r'] x_n[c] x_n[c']
// shared by every m, and right-hand sides rhs_m[(r,c)] = sum_n t[n, m*R + r] x_n[c] (the 1/R
// already in t). Writes the solution to sol (R*C rows, M columns). Returns false if G is
// singular even with the small ridge.
bool solve_half_step(const float* X, int N, int C, int R, const std::vector<float>& g,
                     const std::vector<float>& t, int M, std::vector<double>& sol) {
    const int n = R * C;
    std::vector<double> G(size_t(n) * n, 0.0);
    std::vector<float> Xs(size_t(N) * C), blk(size_t(C) * C);
    const double inv_r2 = 1.0 / (double(R) * R);
    for (int r = 0; r < R; r++)
        for (int r2 = r; r2 < R; r2++) {
            for (int i = 0; i < N; i++) {
                const float w = g[(size_t(i) * R + r) * R + r2];
                const float* xi = X + size_t(i) * C;
                float* o = &Xs[size_t(i) * C];
                for (int c = 0; c < C; c++) o[c] = w * xi[c];
            }
            gemm(true, false, C, C, N, 1.0f, Xs.data(), C, X, C, 0.0f, blk.data(), C);
            for (int c = 0; c < C; c++)
                for (int c2 = 0; c2 < C; c2++) {
                    const double v = blk[size_t(c) * C + c2] * inv_r2;
                    G[size_t(r * C + c) * n + size_t(r2) * C + c2] = v;
                    G[size_t(r2 * C + c2) * n + size_t(r) * C + c] = v;
                }
        }
    // A ridge of 1e-7 of the mean diagonal: keeps directions X never visits at zero without
    // moving the fit measurably.
    double tr = 0;
    for (int i = 0; i < n; i++) tr += G[size_t(i) * n + i];
    // Rank-deficient inputs (layer 0 sees only vocab_size distinct rows) can leave float32
    // round-off above that ridge: retry with a 100x larger one, up to 1e-3.
    const std::vector<double> G0 = G;
    double ridge = 1e-7 * tr / n + 1e-30;
    for (int i = 0; i < n; i++) G[size_t(i) * n + i] += ridge;
    std::vector<float> rhsT(size_t(M) * R * C);
    gemm(true, false, M * R, C, N, 1.0f, t.data(), M * R, X, C, 0.0f, rhsT.data(), C);
    sol.assign(size_t(n) * M, 0.0);
    for (int m = 0; m < M; m++)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                sol[size_t(r * C + c) * M + m] = rhsT[(size_t(m) * R + r) * C + c];
    const std::vector<double> rhs0 = sol;
    while (!cholesky_solve(G, n, sol, M)) {
        ridge *= 100;
        if (ridge > 1e-3 * tr / n) return false;
        G = G0;
        for (int i = 0; i < n; i++) G[size_t(i) * n + i] += ridge;
        sol = rhs0;
    }
    return true;
}

// Per-token Gram of the fixed factor over its free axis: g[n,r,r'] = sum_j F[n, j, r] F[n, j, r']
// where F[n,j,r] = f[n*ld + off(j,r)].
template <typename Off>
std::vector<float> factor_gram(const float* f, long ld, int N, int J, int R, Off off) {
    std::vector<float> g(size_t(N) * R * R);
    for (int i = 0; i < N; i++) {
        const float* fi = f + size_t(i) * ld;
        for (int r = 0; r < R; r++)
            for (int r2 = r; r2 < R; r2++) {
                double s = 0;
                for (int j = 0; j < J; j++) s += double(fi[off(j, r)]) * fi[off(j, r2)];
                g[(size_t(i) * R + r) * R + r2] = g[(size_t(i) * R + r2) * R + r] = float(s);
            }
    }
    return g;
}

// Rescales each rank's A and B rows by s and 1/s so both have the same Frobenius norm (the
// product, hence the fit, is unchanged; balanced factors train better).
void balance(float* WA, float* WB, int H, int D, int R, int C) {
    for (int r = 0; r < R; r++) {
        double na = 0, nb = 0;
        for (int h = 0; h < H; h++) na += sum_sq(WA + (size_t(h) * R + r) * C, C);
        for (int d = 0; d < D; d++) nb += sum_sq(WB + (size_t(r) * D + d) * C, C);
        if (!(na > 0) || !(nb > 0)) continue;
        const float s = float(std::pow(nb / na, 0.25));
        for (int h = 0; h < H; h++)
            for (int c = 0; c < C; c++) WA[(size_t(h) * R + r) * C + c] *= s;
        for (int d = 0; d < D; d++)
            for (int c = 0; c < C; c++) WB[(size_t(r) * D + d) * C + c] /= s;
    }
}

void init_tucker(const float* X, int N, int C, const float* W, const float* K, int H, int D, int R,
                 float* WA, float* WB) {
    // Shared d_h subspace: top-R eigenvectors of sum_{n,h} K[n,h,:]^T K[n,h,:].
    std::vector<float> S(size_t(D) * D);
    gemm(true, false, D, D, N * H, 1.0f, K, D, K, D, 0.0f, S.data(), D);
    std::vector<double> Sd(S.begin(), S.end()), U;
    symmetric_eigen(Sd, D, U);
    // m: least squares m . x_n ~ 1 (the "constant" input direction), with a small ridge.
    std::vector<float> XtX(size_t(C) * C);
    gemm(true, false, C, C, N, 1.0f, X, C, X, C, 0.0f, XtX.data(), C);
    std::vector<double> G(XtX.begin(), XtX.end()), m(static_cast<size_t>(C), 0.0);
    double tr = 0;
    for (int c = 0; c < C; c++) tr += G[size_t(c) * C + c];
    std::vector<double> rhs(static_cast<size_t>(C), 0.0);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) rhs[c] += X[size_t(i) * C + c];
    const std::vector<double> G0 = G;
    for (double ridge = 1e-6; ridge < 1; ridge *= 100) {  // larger if round-off needs it
        G = G0;
        for (int c = 0; c < C; c++) G[size_t(c) * C + c] += ridge * tr / C + 1e-30;
        m = rhs;
        if (cholesky_solve(G, C, m, 1)) break;
        std::fill(m.begin(), m.end(), 0.0);
    }
    // A_r = R * sum_d U[d,r] W[h*D+d]; B rows = U[d,r] * m.
    for (int h = 0; h < H; h++)
        for (int r = 0; r < R; r++) {
            float* a = WA + (size_t(h) * R + r) * C;
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int d = 0; d < D; d++)
                    s += U[size_t(d) * D + r] * W[(size_t(h) * D + d) * C + c];
                a[c] = float(R * s);
            }
        }
    for (int r = 0; r < R; r++)
        for (int d = 0; d < D; d++)
            for (int c = 0; c < C; c++)
                WB[(size_t(r) * D + d) * C + c] = float(U[size_t(d) * D + r] * m[c]);
}

}  // namespace

double tpa_projection_error(const float* X, int N, int C, const float* W, int H, int D, int R,
                            const float* WA, const float* WB) {
    const size_t HD = size_t(H) * D;
    std::vector<float> K(size_t(N) * HD), A(size_t(N) * H * R), Bm(size_t(N) * R * D),
        Kh(size_t(N) * HD);
    gemm(false, true, N, int(HD), C, 1.0f, X, C, W, C, 0.0f, K.data(), int(HD));
    gemm(false, true, N, H * R, C, 1.0f, X, C, WA, C, 0.0f, A.data(), H * R);
    gemm(false, true, N, R * D, C, 1.0f, X, C, WB, C, 0.0f, Bm.data(), R * D);
    tpa_contract_forward(Kh.data(), A.data(), H * R, Bm.data(), R * D, N, H, R, D, 1.0f / R);
    double num = 0;
    for (size_t i = 0; i < K.size(); i++) num += double(K[i] - Kh[i]) * (K[i] - Kh[i]);
    const double den = sum_sq(K.data(), K.size());
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

FitTrace fit_tpa_projection(const float* X, int N, int C, const float* W, int H, int D, int R,
                            const ConvertOptions& opt, float* WA, float* WB) {
    const size_t HD = size_t(H) * D, nA = size_t(H) * R * C, nB = size_t(R) * D * C;
    std::vector<float> K(size_t(N) * HD);
    gemm(false, true, N, int(HD), C, 1.0f, X, C, W, C, 0.0f, K.data(), int(HD));
    if (opt.init == "tucker") {
        init_tucker(X, N, C, W, K.data(), H, D, R, WA, WB);
    } else if (opt.init == "random") {
        std::mt19937_64 gen(opt.seed);
        std::normal_distribution<float> nd(0.0f, 1.0f / std::sqrt(float(C)));
        for (size_t i = 0; i < nA; i++) WA[i] = nd(gen);
        for (size_t i = 0; i < nB; i++) WB[i] = nd(gen);
    } else {
        fail("unknown conversion init '", opt.init, "' (tucker or random)");
    }
    balance(WA, WB, H, D, R, C);
    FitTrace tr;
    tr.init_error = tpa_projection_error(X, N, C, W, H, D, R, WA, WB);
    tr.history.push_back(tr.init_error);
    double err = tr.init_error;
    std::vector<float> A(size_t(N) * H * R), Bm(size_t(N) * R * D), keepA(nA), keepB(nB);
    const float inv_r = 1.0f / float(R);
    std::vector<double> sol;
    for (int it = 0; it < opt.als_iters; it++) {
        for (int half = 0; half < 2; half++) {
            std::copy(WA, WA + nA, keepA.begin());
            std::copy(WB, WB + nB, keepB.begin());
            bool ok;
            if (half == 0) {  // A step: B(x) fixed
                gemm(false, true, N, R * D, C, 1.0f, X, C, WB, C, 0.0f, Bm.data(), R * D);
                auto g =
                    factor_gram(Bm.data(), R * D, N, D, R, [&](int d, int r) { return r * D + d; });
                std::vector<float> t(size_t(N) * H * R);  // t[n,h*R+r] = (1/R) K[n,h,:].B[n,r,:]
                for (int i = 0; i < N; i++)
                    for (int h = 0; h < H; h++)
                        for (int r = 0; r < R; r++) {
                            const float* k = &K[size_t(i) * HD + size_t(h) * D];
                            const float* b = &Bm[size_t(i) * R * D + size_t(r) * D];
                            double s = 0;
                            for (int d = 0; d < D; d++) s += double(k[d]) * b[d];
                            t[(size_t(i) * H + h) * R + r] = float(s) * inv_r;
                        }
                ok = solve_half_step(X, N, C, R, g, t, H, sol);
                if (ok)
                    for (int h = 0; h < H; h++)
                        for (int r = 0; r < R; r++)
                            for (int c = 0; c < C; c++)
                                WA[(size_t(h) * R + r) * C + c] =
                                    float(sol[size_t(r * C + c) * H + h]);
            } else {  // B step: A(x) fixed
                gemm(false, true, N, H * R, C, 1.0f, X, C, WA, C, 0.0f, A.data(), H * R);
                auto g =
                    factor_gram(A.data(), H * R, N, H, R, [&](int h, int r) { return h * R + r; });
                std::vector<float> t(size_t(N) * D * R);  // t[n,d*R+r] = (1/R) sum_h K A
                for (int i = 0; i < N; i++) {
                    const float* ai = &A[size_t(i) * H * R];
                    const float* ki = &K[size_t(i) * HD];
                    float* ti = &t[size_t(i) * D * R];
                    for (int d = 0; d < D; d++)
                        for (int r = 0; r < R; r++) {
                            double s = 0;
                            for (int h = 0; h < H; h++)
                                s += double(ki[size_t(h) * D + d]) * ai[h * R + r];
                            ti[d * R + r] = float(s) * inv_r;
                        }
                }
                ok = solve_half_step(X, N, C, R, g, t, D, sol);
                if (ok)
                    for (int r = 0; r < R; r++)
                        for (int d = 0; d < D; d++)
                            for (int c = 0; c < C; c++)
                                WB[(size_t(r) * D + d) * C + c] =
                                    float(sol[size_t(r * C + c) * D + d]);
            }
            double e = ok ? tpa_projection_error(X, N, C, W, H, D, R, WA, WB) : err;
            if (!ok || !(e <= err)) {  // never accept a step that increases the error
                std::copy(keepA.begin(), keepA.end(), WA);
                std::copy(keepB.begin(), keepB.end(), WB);
                e = err;
            }
            err = e;
            tr.history.push_back(err);
        }
        balance(WA, WB, H, D, R, C);
    }
    tr.final_error = err;
    return tr;
}

ModelConfig converted_config(const ModelConfig& src, const ConvertOptions& opt,
                             const std::string& where) {
    if (src.attention != AttentionKind::mha && src.attention != AttentionKind::gqa &&
        src.attention != AttentionKind::mqa)
        fail(where, ": the source model is ", attention_kind_name(src.attention),
             ", not mha/gqa/mqa (only those convert to TPA)");
    if (opt.to != AttentionKind::tpa && opt.to != AttentionKind::tpa_kvonly)
        fail(where, ": cannot convert to ", attention_kind_name(opt.to), " (tpa or tpa_kvonly)");
    // Q/K/V biases (HF-layout models, ModelConfig::qkv_bias on branches that have it) make the
    // projections affine; the fit ignores biases, so such sources are refused. Read through the
    // config's JSON so that this check compiles with and without that option.
    if (const auto j = src.to_json(); j.is_object() && j.value("qkv_bias", false))
        fail(where, ": the source has q/k/v biases, which the TPA conversion does not fit");
    const int D = src.head_dim;
    auto check = [&](const char* name, int r) {
        if (r < 1 || r > D)
            fail(where, ": --", name, " ", r, " is out of range [1, ", D, "] (1 to head_dim)");
    };
    if (opt.to == AttentionKind::tpa) check("rank-q", opt.q_rank);
    check("rank-k", opt.k_rank);
    check("rank-v", opt.v_rank);
    if (opt.als_iters < 0) fail(where, ": --als-iters must be >= 0");
    if (opt.init != "tucker" && opt.init != "random")
        fail(where, ": --init '", opt.init, "' is not tucker or random");
    ModelConfig c = src;
    c.attention = opt.to;
    c.n_kv_head = 0;
    c.q_rank = opt.q_rank;
    c.k_rank = opt.k_rank;
    c.v_rank = opt.v_rank;
    c.validate(where);
    return c;
}

std::unique_ptr<Model> convert_to_tpa(Model& src, const std::vector<int32_t>& tokens, int seq_len,
                                      const ConvertOptions& opt, std::vector<LayerFit>& report) {
    const ModelConfig& sc = src.config();
    const ModelConfig dc = converted_config(sc, opt, "t6 convert");
    const int L = sc.n_layer, C = sc.n_embd, H = sc.n_head, D = sc.head_dim, Hkv = sc.kv_heads();
    // Calibration activations per layer (N x C each).
    std::vector<std::vector<float>> X(static_cast<size_t>(L));
    int N = 0;
    if (tokens.empty()) {
        N = sc.vocab_size;
        const float* wte = src.param(kEmbeddingName);
        std::vector<float> x(size_t(N) * C), rstd(static_cast<size_t>(N));
        rmsnorm_forward(x.data(), rstd.data(), wte, nullptr, N, C, sc.norm_eps);
        for (auto& xl : X) xl = x;
    } else {
        if (seq_len <= 0 || tokens.size() % size_t(seq_len) != 0)
            fail("t6 convert: calibration tokens are not whole sequences of ", seq_len);
        const int n_seq = int(tokens.size() / size_t(seq_len)), chunk = 8;
        N = n_seq * seq_len;
        for (auto& xl : X) xl.resize(size_t(N) * C);
        for (int s0 = 0; s0 < n_seq; s0 += chunk) {
            const int b = std::min(chunk, n_seq - s0);
            src.forward(tokens.data() + size_t(s0) * seq_len, nullptr, b, seq_len);
            const size_t off = size_t(s0) * seq_len * C, len = size_t(b) * seq_len * C;
            for (int l = 0; l < L; l++)
                std::memcpy(X[l].data() + off, src.attention_input(l), len * sizeof(float));
        }
    }
    auto dst = std::make_unique<Model>(dc);
    // Everything but the attention input projections keeps its tensor (same official names).
    const ParameterLayout& dl = dst->layout();
    for (const auto& s : src.layout().specs) {
        const ParamSpec* d = dl.find(s.name);
        if (d && d->numel == s.numel)
            std::memcpy(dst->params() + d->offset, src.params() + s.offset,
                        s.numel * sizeof(float));
    }
    report.clear();
    for (int l = 0; l < L; l++) {
        const std::string pre = cat("transformer.h.", l, ".attn.");
        // Expand KV heads to query heads (GQA/MQA: KV head j serves query heads j*g .. j*g+g-1).
        auto expanded = [&](const char* name) {
            const float* w = src.param(pre + name + ".weight");
            std::vector<float> out(size_t(H) * D * C);
            const int g = H / Hkv;
            for (int h = 0; h < H; h++)
                std::memcpy(out.data() + size_t(h) * D * C, w + size_t(h / g) * D * C,
                            size_t(D) * C * sizeof(float));
            return out;
        };
        LayerFit lf;
        lf.layer = l;
        const float* x = X[l].data();
        if (dc.attention == AttentionKind::tpa) {
            const float* wq = src.param(pre + "c_q.weight");
            lf.q = fit_tpa_projection(x, N, C, wq, H, D, dc.q_rank, opt,
                                      dst->param(pre + "c_qkv.W_A_q.weight"),
                                      dst->param(pre + "c_qkv.W_B_q.weight"));
        } else {
            std::memcpy(dst->param(pre + "c_qkv.c_q.weight"), src.param(pre + "c_q.weight"),
                        size_t(H) * D * C * sizeof(float));
        }
        const auto wk = expanded("c_k"), wv = expanded("c_v");
        lf.k = fit_tpa_projection(x, N, C, wk.data(), H, D, dc.k_rank, opt,
                                  dst->param(pre + "c_qkv.W_A_k.weight"),
                                  dst->param(pre + "c_qkv.W_B_k.weight"));
        lf.v = fit_tpa_projection(x, N, C, wv.data(), H, D, dc.v_rank, opt,
                                  dst->param(pre + "c_qkv.W_A_v.weight"),
                                  dst->param(pre + "c_qkv.W_B_v.weight"));
        report.push_back(std::move(lf));
    }
    return dst;
}

}  // namespace t6
