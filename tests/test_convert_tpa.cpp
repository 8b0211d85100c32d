// t6 convert's fitting (model/convert_tpa.h): converted tiny MHA and GQA models are valid TPA
// models (save, load, decode == forward), the fit beats a random initialisation, ALS never
// increases the error; the linear algebra helpers are checked against known answers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/linalg.h"
#include "infer/decoder.h"
#include "model/checkpoint.h"
#include "model/convert_tpa.h"
#include "test_models.h"
#include "test_util.h"

namespace t6 {
namespace {

std::vector<float> gaussian(size_t n, unsigned seed, float sd = 1.0f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

TEST(Linalg, CholeskySolvesSpdSystem) {
    const int n = 5;
    auto M = gaussian(n * n, 1);
    std::vector<double> G(n * n, 0.0);  // G = M M^T + I
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            for (int k = 0; k < n; k++) G[i * n + j] += double(M[i * n + k]) * M[j * n + k];
            if (i == j) G[i * n + j] += 1;
        }
    const std::vector<double> G0 = G, x = {1, -2, 3, 0.5, -1};
    std::vector<double> b(n, 0.0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) b[i] += G0[i * n + j] * x[j];
    ASSERT_TRUE(cholesky_solve(G, n, b, 1));
    for (int i = 0; i < n; i++) EXPECT_NEAR(b[i], x[i], 1e-9);
    std::vector<double> bad = {1, 2, 2, 1}, rhs = {1, 1};  // indefinite
    EXPECT_FALSE(cholesky_solve(bad, 2, rhs, 1));
}

TEST(Linalg, SymmetricEigenReconstructs) {
    const int n = 6;
    auto M = gaussian(n * n, 2);
    std::vector<double> S(n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) S[i * n + j] = double(M[i * n + j]) + M[j * n + i];
    std::vector<double> V;
    const auto w = symmetric_eigen(S, n, V);
    for (int k = 1; k < n; k++) EXPECT_GE(w[k - 1], w[k]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += V[i * n + k] * w[k] * V[j * n + k];
            EXPECT_NEAR(s, S[i * n + j], 1e-9);
        }
}

// The reported errors are the errors of the factors written; each ALS half-step keeps or lowers
// the error, and the fit ends below its start.
TEST(ConvertFit, TraceMatchesTheFactors) {
    const int N = 600, C = 12, H = 3, D = 8, R = 2;
    const auto X = gaussian(size_t(N) * C, 3);
    const auto W = gaussian(size_t(H) * D * C, 4, 0.3f);
    std::vector<float> WA(size_t(H) * R * C), WB(size_t(R) * D * C);
    ConvertOptions opt;
    opt.als_iters = 6;
    const FitTrace tr =
        fit_tpa_projection(X.data(), N, C, W.data(), H, D, R, opt, WA.data(), WB.data());
    EXPECT_NEAR(tr.final_error,
                tpa_projection_error(X.data(), N, C, W.data(), H, D, R, WA.data(), WB.data()),
                1e-5);
    ASSERT_EQ(tr.history.size(), 1u + 2u * opt.als_iters);
    for (size_t i = 1; i < tr.history.size(); i++) EXPECT_LE(tr.history[i], tr.history[i - 1]);
    EXPECT_LT(tr.final_error, tr.init_error);
}

// With inputs that have a constant component (as normed activations do), a linear map is well
// approximated: the Tucker start beats a random init, ALS improves it, and ALS from either
// start never increases the error.
TEST(ConvertFit, BeatsRandomInitAndNeverIncreases) {
    const int N = 800, C = 16, H = 4, D = 8, R = 2;
    auto X = gaussian(size_t(N) * C, 5, 0.3f);
    for (int i = 0; i < N; i++) X[size_t(i) * C] += 1.0f;  // a constant direction
    const auto W = gaussian(size_t(H) * D * C, 6, 0.25f);
    std::vector<float> WA(size_t(H) * R * C), WB(size_t(R) * D * C);
    ConvertOptions opt;
    opt.als_iters = 0;
    opt.init = "random";
    const FitTrace rnd =
        fit_tpa_projection(X.data(), N, C, W.data(), H, D, R, opt, WA.data(), WB.data());
    opt.als_iters = 5;
    const FitTrace rnd_als =
        fit_tpa_projection(X.data(), N, C, W.data(), H, D, R, opt, WA.data(), WB.data());
    opt.init = "tucker";
    const FitTrace tk =
        fit_tpa_projection(X.data(), N, C, W.data(), H, D, R, opt, WA.data(), WB.data());
    EXPECT_GT(rnd.final_error, 0.9);  // a random bilinear map explains nothing
    EXPECT_LT(tk.init_error, rnd.final_error);
    EXPECT_LT(tk.final_error, tk.init_error);
    EXPECT_LT(tk.final_error, 0.9);
    for (const FitTrace* t : {&rnd_als, &tk})
        for (size_t i = 1; i < t->history.size(); i++) EXPECT_LE(t->history[i], t->history[i - 1]);
}

// A converted model: valid config, loads back from a checkpoint, decodes like its forward.
void check_converted(AttentionKind from, AttentionKind to) {
    ModelConfig sc = test::tiny_test_config(from);
    Model src(sc);
    test::randomize_weights(src, 11);
    const int T = 16, n_seq = 6;
    std::vector<int32_t> calib(size_t(T) * n_seq);
    std::mt19937 g(7);
    for (auto& t : calib) t = int32_t(g() % unsigned(sc.vocab_size));
    ConvertOptions opt;
    opt.to = to;
    opt.q_rank = 3;
    opt.k_rank = 2;
    opt.v_rank = 2;
    opt.als_iters = 3;
    std::vector<LayerFit> fits;
    auto dst = convert_to_tpa(src, calib, T, opt, fits);
    ASSERT_EQ(int(fits.size()), sc.n_layer);
    EXPECT_EQ(dst->config().attention, to);
    for (const auto& f : fits) {
        EXPECT_LE(f.k.final_error, f.k.init_error);
        EXPECT_LT(f.k.final_error, 1.0);
        EXPECT_LT(f.v.final_error, 1.0);
    }
    // Copied tensors are identical.
    for (const char* name : {kEmbeddingName, "transformer.h.1.mlp.c_fc1.weight",
                             "transformer.h.0.attn.c_proj.weight"}) {
        const auto& s = src.layout().at(name);
        EXPECT_EQ(
            0, std::memcmp(src.params() + s.offset, dst->params() + dst->layout().at(name).offset,
                           s.numel * sizeof(float)))
            << name;
    }
    test::TempDir dir;
    const std::string path = dir.file("converted.safetensors");
    save_weights(path, *dst);
    auto back = load_model(path);
    EXPECT_EQ(back->config().to_json(), dst->config().to_json());
    // decode == forward on a prompt.
    std::vector<int32_t> toks(calib.begin(), calib.begin() + 12);
    back->forward(toks.data(), nullptr, 1, int(toks.size()));
    const int V = sc.vocab_size;
    std::vector<float> ref(back->logits(), back->logits() + toks.size() * size_t(V));
    Decoder dec(*back, 1, 64, CacheType::f32);
    std::vector<float> got(toks.size() * size_t(V));
    dec.append(0, toks.data(), int(toks.size()), got.data(), true);
    double maxdiff = 0;
    for (size_t i = 0; i < ref.size(); i++)
        maxdiff = std::max(maxdiff, double(std::fabs(ref[i] - got[i])));
    EXPECT_LT(maxdiff, 1e-3);
}

TEST(ConvertModel, MhaToTpa) {
    check_converted(AttentionKind::mha, AttentionKind::tpa);
}
TEST(ConvertModel, GqaToTpa) {
    check_converted(AttentionKind::gqa, AttentionKind::tpa);
}
TEST(ConvertModel, GqaToTpaKvonly) {
    check_converted(AttentionKind::gqa, AttentionKind::tpa_kvonly);
}

TEST(ConvertModel, RejectsBadSourcesAndRanks) {
    ConvertOptions opt;
    ModelConfig tpa = test::tiny_test_config(AttentionKind::tpa);
    EXPECT_THROW(converted_config(tpa, opt, "t"), Error);
    ModelConfig mha = test::tiny_test_config(AttentionKind::mha);
    opt.k_rank = 0;
    EXPECT_THROW(converted_config(mha, opt, "t"), Error);
    opt.k_rank = 17;  // > head_dim 16
    EXPECT_THROW(converted_config(mha, opt, "t"), Error);
    opt.k_rank = 2;
    opt.to = AttentionKind::mla;
    EXPECT_THROW(converted_config(mha, opt, "t"), Error);
}

}  // namespace
}  // namespace t6
