// Whole-model gradient check shared by test_model_gradcheck.cpp and test_model_mla.cpp:
// Model::forward_backward's parameter gradients against central differences of Model::forward's
// loss, on a sampled subset of every parameter tensor.
//
// Why these numbers: the model runs in float32, so the loss (~log V ~ 3.5) carries rounding
// noise of a few 1e-7 absolute. With step h = 1e-2 that noise becomes ~1e-5 in the difference
// quotient, while the truncation error O(h^2 f''') stays ~1e-4 relative on gradients of order
// 1e-2..1e-1. A smaller h drowns in float32 noise, a larger one in curvature; 1e-2 relative on
// the whole sampled gradient vector is ~10x above both and far below what any real backward bug
// gives (a wrong sign, a missing term or a transposed index is O(1) relative).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"

namespace t6::test {

// Random weights like the conformance vectors (not the official init, whose zero c_proj would
// make most gradients vanish): 2-D weights U(-a, a) with a = sqrt(3/fan_in) (unit-variance
// outputs), 1-D norm gains 1 + 0.1 N(0,1).
inline void randomize_weights(Model& m, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (const auto& s : m.layout().specs) {
        float* p = m.params() + s.offset;
        if (s.shape.size() == 1) {
            std::normal_distribution<double> nd(0.0, 1.0);
            for (size_t i = 0; i < s.numel; i++) p[i] = float(1.0 + 0.1 * nd(rng));
        } else {
            const double a = std::sqrt(3.0 / double(s.shape.back()));
            std::uniform_real_distribution<double> u(-a, a);
            for (size_t i = 0; i < s.numel; i++) p[i] = float(u(rng));
        }
    }
}

struct GradCheckResult {
    double rel_error = 0;  // ||g - fd|| / ||fd|| over all sampled entries
    // The same per tensor, worst over tensors whose sampled gradients are not tiny (rms > 1e-3,
    // ~100x the finite-difference noise): catches a bug confined to a small tensor (a norm gain)
    // that the whole-vector error would dilute.
    double worst_tensor_rel = 0;
    std::string worst_tensor;
    size_t checked = 0;
};

// Checks up to `per_tensor` entries of every parameter tensor (B=2, T=5, one ignored target).
inline GradCheckResult whole_model_gradcheck(const ModelConfig& cfg, int per_tensor = 12,
                                             double h = 1e-2, uint64_t seed = 1234) {
    const int B = 2, T = 5, N = B * T;
    Model model(cfg);
    randomize_weights(model, seed);
    std::mt19937 rng(unsigned(seed) + 7);
    std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
    std::vector<int32_t> tokens(N), targets(N);
    for (int i = 0; i < N; i++) tokens[i] = tok(rng), targets[i] = tok(rng);
    targets[3] = -1;  // an ignored position

    model.zero_grad();
    model.forward_backward(tokens.data(), targets.data(), B, T);
    std::vector<float> grads(model.grads(), model.grads() + model.num_params());

    std::vector<double> g_all, fd_all;
    double worst = 0;
    std::string worst_name;
    for (const auto& s : model.layout().specs) {
        const size_t n = std::min<size_t>(s.numel, size_t(per_tensor));
        std::uniform_int_distribution<size_t> pick(0, s.numel - 1);
        std::vector<double> g, fd;
        for (size_t j = 0; j < n; j++) {
            const size_t idx = s.offset + (n == s.numel ? j : pick(rng));
            float* p = model.params() + idx;
            const float p0 = *p, hp = p0 + float(h), hm = p0 - float(h);
            *p = hp;
            const double lp = model.forward(tokens.data(), targets.data(), B, T);
            *p = hm;
            const double lm = model.forward(tokens.data(), targets.data(), B, T);
            *p = p0;
            g.push_back(grads[idx]);
            fd.push_back((lp - lm) / double(hp - hm));
        }
        double num = 0, den = 0;
        for (size_t j = 0; j < g.size(); j++)
            num += (g[j] - fd[j]) * (g[j] - fd[j]), den += fd[j] * fd[j];
        const double e = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
        if (std::sqrt(den / double(fd.size())) > 1e-3 && e > worst) worst = e, worst_name = s.name;
        g_all.insert(g_all.end(), g.begin(), g.end());
        fd_all.insert(fd_all.end(), fd.begin(), fd.end());
    }
    double num = 0, den = 0;
    for (size_t j = 0; j < g_all.size(); j++)
        num += (g_all[j] - fd_all[j]) * (g_all[j] - fd_all[j]), den += fd_all[j] * fd_all[j];
    GradCheckResult r;
    r.rel_error = std::sqrt(num / den);
    r.checked = g_all.size();
    r.worst_tensor_rel = worst;
    r.worst_tensor = worst_name;
    std::printf("%s: %zu sampled gradient entries, rel error %.3g (worst tensor %.3g: %s)\n",
                cfg.describe().c_str(), r.checked, r.rel_error, worst, worst_name.c_str());
    return r;
}

// A tiny config of the given kind: vocab 32, one layer, n_embd 16, 2 heads of 8.
inline ModelConfig tiny_gradcheck_config(AttentionKind kind) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = 32;
    c.n_layer = 1;
    c.n_embd = 16;
    c.n_head = 2;
    c.head_dim = 8;
    c.block_size = 16;
    c.q_rank = 3;
    c.k_rank = 2;
    c.v_rank = 2;
    c.n_kv_head = kind == AttentionKind::gqa ? 1 : 0;
    c.q_lora_rank = 8;
    c.kv_lora_rank = 6;
    c.qk_rope_head_dim = 4;
    c.v_head_dim = 8;
    return c;
}

}  // namespace t6::test
