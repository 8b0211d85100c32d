#include "model/model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>

#include "core/error.h"
#include "core/profile.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"
#include "model/attn/attention.h"
#include "model/model_rope.h"

namespace t6 {

namespace {

// x[n, :] += bias for every row (the q/k/v biases of HF-layout models, before RoPE).
void add_row_bias(float* x, const float* bias, int N, int P) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float* row = x + size_t(n) * P;
        for (int j = 0; j < P; j++) row[j] += bias[j];
    }
}

// g[j] += sum_n d[n, j] (their gradient), in row order for every column.
void add_column_sums(float* g, const float* d, int N, int P) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < P; j++) {
        float s = 0.0f;
        for (int n = 0; n < N; n++) s += d[size_t(n) * P + j];
        g[j] += s;
    }
}

}  // namespace

Model::Model(const ModelConfig& cfg) : cfg_(cfg) {
    cfg_.validate("model config");
    layout_ = build_parameter_layout(cfg_);
    // The parameters, gradients, activations and scratch sit on transparent huge pages
    // (AlignedArray::resize): with 4 KiB pages a small-t6 training step's GEMMs and kernels took
    // about 4% longer from TLB misses over these hundreds of MB, and first touching the 497 MB
    // gradient page by page took 1.3-2.3 s, 0.8 s on huge pages (docs/decode-bench.md,
    // session 26).
    params_.resize(layout_.total, true);
    // grads_ is allocated by the first backward pass or grads() call: a model used only for
    // inference (generation, evaluation, serving) never holds a gradient buffer.
    rope_ = model_rope_tables(cfg_, cfg_.block_size);
    mw_ = model_weights(cfg_, layout_);
    build_grad_buckets();
}

void Model::build_grad_buckets() {
    // A layer's bucket is the span of its parameters "transformer.h.<l>."; it is used only if
    // the span holds nothing else (the layout keeps each layer's parameters together).
    std::vector<std::pair<size_t, size_t>> spans(size_t(cfg_.n_layer), {SIZE_MAX, 0});
    std::vector<size_t> numel(size_t(cfg_.n_layer), 0);
    for (const auto& s : layout_.specs)
        for (int l = 0; l < cfg_.n_layer; l++)
            if (s.name.rfind(cat("transformer.h.", l, "."), 0) == 0) {
                auto& sp = spans[size_t(l)];
                sp.first = std::min(sp.first, s.offset);
                sp.second = std::max(sp.second, s.offset + s.numel);
                numel[size_t(l)] += s.numel;
            }
    bool ok = true;
    for (int l = 0; l < cfg_.n_layer; l++)
        ok = ok && spans[size_t(l)].second - spans[size_t(l)].first == numel[size_t(l)];
    std::vector<std::pair<size_t, size_t>> covered;  // [begin, end), sorted below
    if (ok)
        for (int l = 0; l < cfg_.n_layer; l++) {
            layer_bucket_.push_back({spans[size_t(l)].first, numel[size_t(l)]});
            covered.push_back(spans[size_t(l)]);
        }
    std::sort(covered.begin(), covered.end());
    size_t at = 0;
    for (const auto& [b, e] : covered) {
        if (b > at) tail_buckets_.push_back({at, b - at});
        at = std::max(at, e);
    }
    if (at < layout_.total) tail_buckets_.push_back({at, layout_.total - at});
}

std::vector<std::pair<size_t, size_t>> Model::grad_buckets() const {
    std::vector<std::pair<size_t, size_t>> b;
    if (defer_embedding_) b = tail_buckets_;
    for (int l = int(layer_bucket_.size()) - 1; l >= 0; l--) b.push_back(layer_bucket_[size_t(l)]);
    if (!defer_embedding_) b.insert(b.end(), tail_buckets_.begin(), tail_buckets_.end());
    return b;
}

void Model::set_defer_embedding_backward(bool on) {
    // Only the tied embedding may lie outside the layers' buckets: it alone then waits for the
    // embedding backward, and the lm_head has written the rest of its gradient before layer
    // n_layer-1's backward starts. (HF layout: the final norm gain and an untied lm_head, after
    // the layers, are final by then too.)
    const size_t wte = layout_.specs[0].numel;
    const size_t tail_max = cfg_.norm_weights || !cfg_.tied_embeddings ? 2 : 1;
    T6_CHECK(!on || (layer_bucket_.size() == size_t(cfg_.n_layer) && !tail_buckets_.empty() &&
                     tail_buckets_.size() <= tail_max && tail_buckets_[0].first == 0 &&
                     tail_buckets_[0].second == wte),
             "deferred embedding backward needs per-layer buckets");
    defer_embedding_ = on;
}

void Model::init_weights(uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto uniform = [&](float* p, size_t n, double bound) {
        std::uniform_real_distribution<double> u(-bound, bound);
        for (size_t i = 0; i < n; i++) p[i] = float(u(rng));
    };
    const int C = cfg_.n_embd, H = cfg_.n_head, D = cfg_.head_dim;
    for (const auto& s : layout_.specs) {
        float* p = params_.data() + s.offset;
        const std::string& n = s.name;
        auto ends_with = [&](const char* suffix) {
            size_t k = std::strlen(suffix);
            return n.size() >= k && n.compare(n.size() - k, k, suffix) == 0;
        };
        if (ends_with(".bias")) {
            std::fill(p, p + s.numel, 0.0f);  // nn.Linear biases of HF-layout models: zero
        } else if (ends_with("c_proj.weight")) {
            std::fill(p, p + s.numel,
                      0.0f);  // zero-initialised output projections (docs/numerics.md §12)
        } else if (s.shape.size() == 1) {
            // MLA's q_a_layernorm / kv_a_layernorm gains: official RMSNorm, torch.ones.
            std::fill(p, p + s.numel, 1.0f);
        } else if (n.find(".W_A_") != std::string::npos) {
            // CPLinear: xavier_uniform_ on W_A viewed as [C, H, R]: fan_in = H*R,
            // fan_out = C*R (docs/numerics.md §13).
            double R = double(s.shape[0]) / H;
            uniform(p, s.numel, std::sqrt(6.0 / (H * R + C * R)));
        } else if (n.find(".W_B_") != std::string::npos) {
            // W_B viewed as [C, R, D]: fan_in = R*D, fan_out = C*D.
            double R = double(s.shape[0]) / D;
            uniform(p, s.numel, std::sqrt(6.0 / (R * D + double(C) * D)));
        } else if (ends_with("c_qkv.c_q.weight")) {
            uniform(p, s.numel, std::sqrt(6.0 / double(s.shape[0] + s.shape[1])));  // xavier
        } else {
            // nn.Linear default (kaiming_uniform a=sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)); also
            // the tied embedding, which takes lm_head's init (docs/numerics.md §9).
            uniform(p, s.numel, 1.0 / std::sqrt(double(s.shape.back())));
        }
    }
}

void Model::ensure_grads() {
    if (grads_.size() != layout_.total) grads_.resize(layout_.total, true);  // zero-filled
}

void Model::zero_grad() {
    if (grads_.size() != layout_.total) {
        ensure_grads();
        return;
    }
    // Both cores write: one thread's memset of small's 497 MB took 21-23 ms, two took 10.5-12
    // (2026-12-04, Zen 5), about 0.5% of a small training step.
    float* g = grads_.data();
    const size_t n = grads_.size();
#pragma omp parallel
    {
        const size_t k = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
        const size_t chunk = (n + k - 1) / k, lo = std::min(n, chunk * t);
        const size_t hi = std::min(n, lo + chunk);
        if (hi > lo) std::memset(static_cast<void*>(g + lo), 0, (hi - lo) * sizeof(float));
    }
}

size_t Model::activation_bytes() const {
    return (acts_.size() + logits_.size() + scratch_.size()) * sizeof(float) +
           dlogits_bf16_.size() * sizeof(uint16_t);
}

void Model::ensure_capacity(int B, int T) {
    if (T > cfg_.block_size)
        fail("sequence length ", T, " exceeds the model's block_size ", cfg_.block_size);
    const size_t N = size_t(B) * T;
    if (N <= size_t(cap_tokens_)) return;
    const size_t C = cfg_.n_embd, F = cfg_.hidden_dim(), P = projection_width(cfg_),
                 Y = size_t(cfg_.n_head) * cfg_.v_dim(), H = cfg_.n_head,
                 S = attention_saved_per_token(cfg_);
    const size_t per_layer = N * (4 * C + 2 + P + S + Y + H + 3 * F);
    acts_.resize(per_layer * cfg_.n_layer + N * (2 * C + 1), true);
    float* p = acts_.data();
    auto take = [&](size_t n) {
        float* r = p;
        p += n;
        return r;
    };
    la_.assign(cfg_.n_layer, {});
    for (auto& a : la_) {
        a.res = take(N * C);
        a.ln1 = take(N * C);
        a.rstd1 = take(N);
        a.proj = take(N * P);
        a.saved = take(N * S);
        a.y = take(N * Y);
        a.lse = take(N * H);
        a.res_mid = take(N * C);
        a.ln2 = take(N * C);
        a.rstd2 = take(N);
        a.a = take(N * F);
        a.b = take(N * F);
        a.h = take(N * F);
    }
    res_final_ = take(N * C);
    lnf_out_ = take(N * C);
    rstdf_ = take(N);
    logits_.resize(N * size_t(cfg_.vocab_size), true);
    const size_t SC = attention_scratch_per_token(cfg_);
    scratch_.resize(N * (2 * C + P + SC + Y + 3 * F), true);
    p = scratch_.data();
    dres_ = take(N * C);
    dln_ = take(N * C);
    dproj_ = take(N * P);
    dattn_scratch_ = take(N * SC);
    dy_ = take(N * Y);
    da_ = take(N * F);
    db_ = take(N * F);
    dh_ = take(N * F);
    cap_tokens_ = int(N);
}

void Model::check_tokens(const int32_t* tokens, const int32_t* targets, int B, int T) const {
    if (B <= 0 || T <= 0)
        fail("batch and sequence length must be positive (got B=", B, ", T=", T, ")");
    const size_t N = size_t(B) * T;
    for (size_t i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
            fail("token id ", tokens[i], " at position ", i, " is outside the vocabulary [0, ",
                 cfg_.vocab_size, ")");
    if (targets)
        for (size_t i = 0; i < N; i++)
            if (targets[i] < -1 || targets[i] >= cfg_.vocab_size)
                fail("target id ", targets[i], " at position ", i,
                     " is outside the vocabulary (use -1 to ignore a position)");
}

// The block walk of training. Decoder::run (infer/decoder.cpp) walks the same block for cached
// inference over the same weight description (model_weights) and attention wing; the two stay
// separate walks because this one keeps every layer's activations for the backward pass while
// the decoder reuses one set of row buffers and dispatches each matrix by weight type (bf16,
// q8/q4, few-row GEMV), which a shared walk would slow down (see the comment there).
void Model::run_forward(const int32_t* tokens, int B, int T) {
    ensure_capacity(B, T);
    const int N = B * T, C = cfg_.n_embd, F = cfg_.hidden_dim(), P = projection_width(cfg_);
    const int Y = cfg_.n_head * cfg_.v_dim();
    const float eps = cfg_.norm_eps;
    const float* W = params_.data();
    {
        T6_PROFILE_SCOPE("fwd.embedding");
        embedding_forward(la_[0].res, tokens, W + layout_.specs[0].offset, N, C);
    }
    for (int l = 0; l < cfg_.n_layer; l++) {
        LayerActs& a = la_[l];
        const LayerWeights& w = mw_.layers[size_t(l)];
        float* res_out = l + 1 < cfg_.n_layer ? la_[l + 1].res : res_final_;
        {
            T6_PROFILE_SCOPE("fwd.attn.norm+qkv_gemm");
            rmsnorm_forward(a.ln1, a.rstd1, a.res, wp(w.ln1), N, C, eps);
            linear_forward(a.proj, a.ln1, W + w.qkv, N, C, P);  // all input projections, one GEMM
            if (w.bias != kNone) add_row_bias(a.proj, W + w.bias, N, P);
        }
        {
            T6_PROFILE_SCOPE("fwd.attn.core");
            attention_core_forward(cfg_, {&w.core, W, grads_.data()}, rope_, a.proj, a.saved, a.y,
                                   a.lse, B, T);
        }
        {
            T6_PROFILE_SCOPE("fwd.attn.c_proj");
            // res_mid = res + c_proj(y)
            std::memcpy(a.res_mid, a.res, sizeof(float) * size_t(N) * C);
            gemm(false, true, N, C, Y, 1.0f, a.y, Y, W + w.c_proj, Y, 1.0f, a.res_mid, C);
        }
        {
            T6_PROFILE_SCOPE("fwd.mlp.norm+fc_gemm");
            rmsnorm_forward(a.ln2, a.rstd2, a.res_mid, wp(w.ln2), N, C, eps);
            linear_forward(a.a, a.ln2, W + w.fc1, N, C, F);
            linear_forward(a.b, a.ln2, W + w.fc2, N, C, F);
        }
        {
            T6_PROFILE_SCOPE("fwd.mlp.swiglu");
            swiglu_forward(a.h, a.a, a.b, size_t(N) * F);
        }
        {
            T6_PROFILE_SCOPE("fwd.mlp.c_proj");
            std::memcpy(res_out, a.res_mid, sizeof(float) * size_t(N) * C);
            gemm(false, true, N, C, F, 1.0f, a.h, F, W + w.mlp_proj, F, 1.0f, res_out, C);
        }
    }
    T6_PROFILE_SCOPE("fwd.lm_head");
    rmsnorm_forward(lnf_out_, rstdf_, res_final_, wp(mw_.lnf), N, C, eps);
    linear_forward(logits_.data(), lnf_out_, W + mw_.head, N, C, cfg_.vocab_size);
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T) {
    check_tokens(tokens, targets, B, T);
    const ScopedMatmulPrecision precision(matmul_precision_);
    run_forward(tokens, B, T);
    if (!targets) return 0.0f;
    return cross_entropy_forward_backward(nullptr, nullptr, logits_.data(), targets, B * T,
                                          cfg_.vocab_size, 1.0f);
}

float Model::forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                              float grad_scale) {
    if (!targets) fail("forward_backward needs targets");
    check_tokens(tokens, targets, B, T);
    const ScopedMatmulPrecision precision(matmul_precision_);
    run_forward(tokens, B, T);
    // Loss and d(loss)/d(logits) in one pass, in place over the logits.
    float loss;
    {
        T6_PROFILE_SCOPE("cross_entropy");
        loss = loss_fn_
                   ? loss_fn_(tokens, targets, logits_.data(), B, T, grad_scale)
                   : cross_entropy_forward_backward(logits_.data(), nullptr, logits_.data(),
                                                    targets, B * T, cfg_.vocab_size, grad_scale);
    }
    ensure_grads();
    run_backward(tokens, B, T);
    return loss;
}

void Model::run_backward(const int32_t* tokens, int B, int T) {
    const int N = B * T, C = cfg_.n_embd, F = cfg_.hidden_dim(), P = projection_width(cfg_);
    const int Y = cfg_.n_head * cfg_.v_dim(), V = cfg_.vocab_size;
    const float* W = params_.data();
    float* G = grads_.data();
    const size_t wte = layout_.specs[0].offset;
    const size_t NC = size_t(N) * C;
    {
        T6_PROFILE_SCOPE("bwd.lm_head");
        // lm_head (tied: head = wte): dlnf = dlogits @ head, dhead += dlogits^T lnf.
        if (matmul_precision_ == MatmulPrecision::bf16) {
            // Round the (N,V) dlogits once instead of once per product.
            const size_t NV = size_t(N) * V;
            if (dlogits_bf16_.size() < NV) dlogits_bf16_.resize(NV);
            to_bf16(dlogits_bf16_.data(), logits_.data(), NV);
            gemm_bf16_a(false, false, N, C, V, 1.0f, dlogits_bf16_.data(), V, W + mw_.head, C, 0.0f,
                        dln_, C);
            gemm_bf16_a(true, false, V, C, N, 1.0f, dlogits_bf16_.data(), V, lnf_out_, C, 1.0f,
                        G + mw_.head, C);
        } else {
            gemm(false, false, N, C, V, 1.0f, logits_.data(), V, W + mw_.head, C, 0.0f, dln_, C);
            gemm(true, false, V, C, N, 1.0f, logits_.data(), V, lnf_out_, C, 1.0f, G + mw_.head, C);
        }
        std::memset(dres_, 0, sizeof(float) * NC);
        rmsnorm_backward(dres_, gp(mw_.lnf), dln_, res_final_, wp(mw_.lnf), rstdf_, N, C);
    }
    for (int l = cfg_.n_layer - 1; l >= 0; l--) {
        // Deferred embedding backward: the tied embedding's gradient (lm_head's part) is final.
        if (l == cfg_.n_layer - 1 && grad_ready_ && defer_embedding_)
            for (const auto& [offset, count] : tail_buckets_) grad_ready_(offset, count);
        LayerActs& a = la_[l];
        const LayerWeights& w = mw_.layers[size_t(l)];
        // MLP: res_out = res_mid + c_proj(swiglu(fc1(ln2), fc2(ln2))).
        {
            T6_PROFILE_SCOPE("bwd.mlp.c_proj");
            gemm(false, false, N, F, C, 1.0f, dres_, C, W + w.mlp_proj, F, 0.0f, dh_, F);
            gemm(true, false, C, F, N, 1.0f, dres_, C, a.h, F, 1.0f, G + w.mlp_proj, F);
        }
        {
            T6_PROFILE_SCOPE("bwd.mlp.swiglu");
            swiglu_backward(da_, db_, dh_, a.a, a.b, size_t(N) * F);
        }
        {
            T6_PROFILE_SCOPE("bwd.mlp.fc_gemm+norm");
            gemm(false, false, N, C, F, 1.0f, da_, F, W + w.fc1, C, 0.0f, dln_, C);
            linear_backward(dln_, G + w.fc2, db_, a.ln2, W + w.fc2, N, C, F);
            linear_backward(nullptr, G + w.fc1, da_, a.ln2, W + w.fc1, N, C, F);
            rmsnorm_backward(dres_, gp(w.ln2), dln_, a.res_mid, wp(w.ln2), a.rstd2, N, C);
        }
        {
            T6_PROFILE_SCOPE("bwd.attn.c_proj");
            // Attention: res_mid = res + c_proj(y).
            gemm(false, false, N, Y, C, 1.0f, dres_, C, W + w.c_proj, Y, 0.0f, dy_, Y);
            gemm(true, false, C, Y, N, 1.0f, dres_, C, a.y, Y, 1.0f, G + w.c_proj, Y);
        }
        {
            T6_PROFILE_SCOPE("bwd.attn.core");
            attention_core_backward(cfg_, {&w.core, W, G}, rope_, a.proj, a.saved, a.y, a.lse, dy_,
                                    dproj_, dattn_scratch_, B, T);
            if (w.bias != kNone) add_column_sums(G + w.bias, dproj_, N, P);
        }
        {
            T6_PROFILE_SCOPE("bwd.attn.qkv_gemm+norm");
            gemm(false, false, N, C, P, 1.0f, dproj_, P, W + w.qkv, C, 0.0f, dln_, C);
            gemm(true, false, P, C, N, 1.0f, dproj_, P, a.ln1, C, 1.0f, G + w.qkv, C);
            rmsnorm_backward(dres_, gp(w.ln1), dln_, a.res, wp(w.ln1), a.rstd1, N, C);
        }
        // Layer l's gradients are final (data-parallel: its all-reduce may start).
        if (grad_ready_ && !layer_bucket_.empty())
            grad_ready_(layer_bucket_[size_t(l)].first, layer_bucket_[size_t(l)].second);
    }
    if (defer_embedding_) return;  // dres_ holds d(loss)/d(embedding output) for the caller
    T6_PROFILE_SCOPE("bwd.embedding");
    embedding_backward(G + wte, dres_, tokens, N, C, V);
    if (grad_ready_)
        for (const auto& [offset, count] : tail_buckets_) grad_ready_(offset, count);
}

}  // namespace t6
