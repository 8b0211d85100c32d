// A T6 / LLaMA-style decoder (official model files T6.py, T6_kvonly.py, llama-mha.py,
// llama-gqa.py): tied token embedding, n_layer pre-norm blocks
//   x = x + c_proj(attention(rms_norm(x)));  x = x + mlp(rms_norm(x))
// with weightless RMSNorm, SwiGLU MLP, RoPE inside attention, a final RMSNorm and the tied
// lm_head. Hugging Face LLaMA-layout models (docs/hf-import.md) add RMSNorm gains, an untied
// lm_head, q/k/v biases and HF's RoPE convention (ModelConfig options; off by default). Float32
// forward and backward over whole sequences (training, scoring). Parameters, gradients and
// activations each live in one contiguous buffer.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "kernels/gemm.h"
#include "kernels/rope.h"
#include "model/config.h"
#include "model/layer_weights.h"
#include "model/params.h"

namespace t6 {

class Model {
  public:
    explicit Model(const ModelConfig& cfg);

    const ModelConfig& config() const { return cfg_; }
    const ParameterLayout& layout() const { return layout_; }
    // Where each weight lies in params(), per layer (the description Decoder walks too).
    const ModelWeights& weights() const { return mw_; }
    size_t num_params() const { return layout_.total; }
    float* params() { return params_.data(); }
    const float* params() const { return params_.data(); }
    // The gradient buffer, allocated (zero) on first use: by forward_backward, zero_grad or the
    // non-const accessors. The const accessor returns nullptr before that.
    float* grads() {
        ensure_grads();
        return grads_.data();
    }
    const float* grads() const { return grads_.data(); }
    float* param(const std::string& name) { return params_.data() + layout_.at(name).offset; }
    float* grad(const std::string& name) { return grads() + layout_.at(name).offset; }

    // The official initialisation (docs/numerics.md §9, §12, §13), seeded.
    void init_weights(uint64_t seed);
    void zero_grad();

    // Forward over tokens (B,T) (ids < vocab_size, T <= block_size). With targets (B,T) (-1 =
    // ignored) returns the mean cross-entropy, else 0. Logits (B*T, V) stay readable in logits().
    float forward(const int32_t* tokens, const int32_t* targets, int B, int T);

    // Forward and backward in one call: returns the mean loss and accumulates
    // grad_scale * d(loss)/d(params) into grads() (grad_scale = 1/accumulation steps).
    // The logits buffer is reused for their gradient, so logits() is not valid afterwards.
    float forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                           float grad_scale = 1.0f);

    const float* logits() const { return logits_.data(); }
    // Replaces forward_backward's cross-entropy (e.g. distillation, train/distill.h): called
    // after the forward with the (B*T, V) logits, it returns the loss and writes (=)
    // grad_scale * d(loss)/d(logits) over them in place. Empty: cross-entropy.
    using LossFn = std::function<float(const int32_t* tokens, const int32_t* targets, float* logits,
                                       int B, int T, float grad_scale)>;
    void set_loss_fn(LossFn fn) { loss_fn_ = std::move(fn); }
    // The input of layer `layer`'s attention projections (the normed residual, B*T rows of
    // n_embd) from the last forward: calibration activations for `t6 convert`.
    const float* attention_input(int layer) const { return la_.at(size_t(layer)).ln1; }

    // How forward() and forward_backward() compute their matrix products: f32 (default, the
    // reference) or bf16 (inputs rounded to bfloat16, float32 accumulation; see kernels/gemm.h).
    // Parameters, gradients, activations and everything outside the GEMMs stay float32.
    void set_matmul_precision(MatmulPrecision p) { matmul_precision_ = p; }
    MatmulPrecision matmul_precision() const { return matmul_precision_; }
    // Data-parallel training (train/dist.h) starts reducing gradients while backward runs:
    // forward_backward calls hook(offset, count) as soon as grads()[offset, offset+count) holds
    // its final value for this call: each layer's parameters when that layer's backward is done
    // (last layer first), then the rest (the tied embedding, which both the lm_head and the
    // embedding backward write, is final only at the very end). The ranges, in that order, are
    // grad_buckets(); together they cover every parameter once. An empty hook: no calls.
    using GradReadyHook = std::function<void(size_t offset, size_t count)>;
    void set_grad_ready_hook(GradReadyHook hook) { grad_ready_ = std::move(hook); }
    std::vector<std::pair<size_t, size_t>> grad_buckets() const;

    // With defer_embedding_backward(true), forward_backward leaves the embedding lookup's share
    // out of the tied embedding's gradient: it keeps embedding_output_grad() (B*T rows of
    // n_embd, d(loss)/d(embedding output), grad_scale included) for the caller to add with
    // embedding_backward(grads() + embedding offset, ..., tokens) — in data-parallel training,
    // every rank's rows after the all-reduce. The embedding's bucket, then final right after the
    // lm_head backward, is reported first, before any layer's, so its all-reduce (the largest
    // bucket of small models) runs behind the whole backward pass.
    void set_defer_embedding_backward(bool on);
    const float* embedding_output_grad() const { return dres_; }

    // Bytes held in activations for the largest (B,T) seen so far.
    size_t activation_bytes() const;

  private:
    struct LayerActs {  // views into acts_, for one layer
        float *res, *ln1, *rstd1, *proj, *saved, *y, *lse, *res_mid, *ln2, *rstd2, *a, *b, *h;
    };
    static constexpr size_t kNone = LayerWeights::kNone;
    // Parameter / gradient pointer at an offset, nullptr for kNone.
    const float* wp(size_t off) const { return off == kNone ? nullptr : params_.data() + off; }
    float* gp(size_t off) { return off == kNone ? nullptr : grads_.data() + off; }
    void ensure_capacity(int B, int T);
    void ensure_grads();
    void check_tokens(const int32_t* tokens, const int32_t* targets, int B, int T) const;
    void run_forward(const int32_t* tokens, int B, int T);
    void run_backward(const int32_t* tokens, int B, int T);

    ModelConfig cfg_;
    ParameterLayout layout_;
    ModelWeights mw_;  // where each weight lies (model_weights())
    RopeTables rope_;
    FloatBuffer params_, grads_;
    // Activations: per layer LayerActs, then the final residual, final norm and its rstd.
    FloatBuffer acts_;
    std::vector<LayerActs> la_;
    float *res_final_ = nullptr, *lnf_out_ = nullptr, *rstdf_ = nullptr;
    FloatBuffer logits_;
    MatmulPrecision matmul_precision_ = MatmulPrecision::f32;
    // bf16 copy of d(loss)/d(logits), rounded once for both lm_head backward products.
    AlignedArray<uint16_t> dlogits_bf16_;
    // Backward scratch, shared by all layers.
    FloatBuffer scratch_;
    float *dres_ = nullptr, *dln_ = nullptr, *dproj_ = nullptr, *dattn_scratch_ = nullptr,
          *dy_ = nullptr, *da_ = nullptr, *db_ = nullptr, *dh_ = nullptr;
    int cap_tokens_ = 0, cap_B_ = 0;
    // Gradient buckets (see set_grad_ready_hook): per layer (empty if a layer's parameters are
    // not contiguous), then the ranges no layer covers.
    GradReadyHook grad_ready_;
    LossFn loss_fn_;
    bool defer_embedding_ = false;
    std::vector<std::pair<size_t, size_t>> layer_bucket_, tail_buckets_;
    void build_grad_buckets();
};

}  // namespace t6
