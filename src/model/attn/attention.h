// The attention wing: the kind-specific middle of an attention block, for training and for cached
// inference, from the fused input projections proj = ln(x) @ [W_1; W_2; ...]^T (one GEMM, done by
// the caller) to the per-head outputs y that feed c_proj. One file per kind holds both of its
// cores over one description of its weights (attn/gqa.cpp, attn/tpa.cpp, attn/mla.cpp); the kind's
// facts (names, projection layout, cache record, FLOPs, equal-parameter heads) are one row of
// attn/kinds.h. docs/adding-an-attention-kind.md lists every place a new kind touches.
//
// Two callers: Model (training forward/backward over whole sequences) and Decoder (incremental
// inference over a KV cache), each with two shapes of work:
//  * a chunk: n consecutive tokens of one sequence (prefill, scoring);
//  * a step: one new token for each of several sequences (batched decoding).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/quant.h"
#include "kernels/rope.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/params.h"

namespace t6 {

// Offsets (into the parameter buffer) of the tensors a kind's core owns beyond the fused input
// projection, in the kind's own order (MLA: q_a_layernorm, q_b_proj, kv_a_layernorm, kv_b_proj;
// none for the others). Resolved once per model by attention_core_weights, so no core looks a
// weight up by name while it runs.
constexpr size_t kNoWeight = SIZE_MAX;
using CoreWeights = std::array<size_t, 4>;
CoreWeights attention_core_weights(const ModelConfig& c, const ParameterLayout& layout, int layer);

// Quantized copies of a layer's core matrices for decoding with q8 / q4 weights (the Decoder's,
// model/quantize.h: MLA's q_b_proj and kv_b_proj), by the core's index; null where the core
// reads float32. int8_activations: the q8a8 / q4a8 types (ordinary linear layers of the core
// then take int8 activations, kernels/int8_linear.h).
struct CoreQuant {
    std::array<const QuantMatrix*, 4> mat{};
    bool int8_activations = false;
};

// The parameters of one layer as a core reads them: W/G the model's parameter and gradient
// buffers (G may be null where nothing is trained), `core` the layer's resolved offsets, `quant`
// (cached inference only, may be null) the quantized copies of the core's matrices.
struct LayerParamRef {
    const CoreWeights* core = nullptr;
    const float* W = nullptr;
    float* G = nullptr;
    const CoreQuant* quant = nullptr;
    const float* w(int i) const { return W + (*core)[size_t(i)]; }
    float* g(int i) const { return G + (*core)[size_t(i)]; }
    const QuantMatrix* q(int i) const { return quant ? quant->mat[size_t(i)] : nullptr; }
};

// Width P of the fused projection output per token.
int projection_width(const ModelConfig& c);

// Floats per token that a kind saves for the backward pass besides proj and y (TPA: q, k, v;
// MLA: latent norm outputs and their rstd, the assembled q, k and v).
size_t attention_saved_per_token(const ModelConfig& c);

// Floats per token of scratch the backward pass needs (TPA: dq, dk, dv; MLA: also dkv and the
// latent gradients).
size_t attention_scratch_per_token(const ModelConfig& c);

// Training. proj (N,P): in: raw projections; out: RoPE applied in place where the kind rotates.
// saved (N, attention_saved_per_token), y (N, H*Dv), lse (B,H,T).
void attention_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                            float* proj, float* saved, float* y, float* lse, int B, int T);

// dy (N, H*Dv) -> dproj (N,P) (written, =). scratch: (N, attention_scratch_per_token).
// Parameter gradients of weights the core owns are accumulated (+=) into w.G.
void attention_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                             const float* proj, const float* saved, const float* y,
                             const float* lse, const float* dy, float* dproj, float* scratch, int B,
                             int T);

// Cached inference: the new tokens of one call.
struct NewTokens {
    int n = 0;                  // rows of proj / y
    bool chunk = false;         // true: one sequence, consecutive positions
    const int* slot = nullptr;  // per row
    const int* pos = nullptr;   // per row
};

// proj: (n, P) raw projections (rotated in place). y: (n, H*Dv) attention outputs (before c_proj).
// Rotates what RoPE rotates, appends the new tokens' records to the cache and attends from it.
// w.G is unused.
void cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                     const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                     std::vector<float>& scratch);

}  // namespace t6
