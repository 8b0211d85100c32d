// The kind-specific middle of an attention block: from the fused input projections
// proj = ln(x) @ [W_1; W_2; ...]^T (one GEMM, done by the caller) to the per-head outputs y
// that feed c_proj, and back. One implementation file per attention kind.
#pragma once
#include <cstddef>

#include "kernels/rope.h"
#include "model/config.h"
#include "model/params.h"

namespace t6 {

// The parameters of one layer, for kinds whose core owns weights beyond the fused input
// projection (MLA: latent norms and up-projections). W/G are the model's parameter and gradient
// buffers; look tensors up by official name in `layout`.
struct LayerParamRef {
    const ParameterLayout* layout = nullptr;
    int layer = 0;
    const float* W = nullptr;
    float* G = nullptr;
    size_t offset(const std::string& suffix) const;  // "attn.q_b_proj.weight" -> offset
};

// Width P of the fused projection output per token.
int projection_width(const ModelConfig& c);

// Floats per token that a kind saves for the backward pass besides proj and y (TPA: q, k, v;
// MLA: see mla_saved_per_token).
size_t attention_saved_per_token(const ModelConfig& c);

// Floats per token of scratch the backward pass needs (TPA: dq, dk, dv; MLA: also dkv and the
// latent gradients).
size_t attention_scratch_per_token(const ModelConfig& c);

// proj (N,P): in: raw projections; out: RoPE applied in place where the kind rotates.
// saved (N, attention_saved_per_token), y (N, H*Dv), lse (B,H,T).
void attention_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                            float* proj, float* saved, float* y, float* lse, int B, int T);

// dy (N, H*Dv) -> dproj (N,P) (written, =). scratch: (N, attention_scratch_per_token).
// Parameter gradients of weights the core owns are accumulated (+=) into w.G.
void attention_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                             const float* proj, const float* saved, const float* y,
                             const float* lse, const float* dy, float* dproj, float* scratch, int B,
                             int T);

// Per-kind implementations (attention_tpa.cpp, attention_gqa.cpp, attention_mla.cpp).
void tpa_core_forward(const ModelConfig& c, const RopeTables& rope, float* proj, float* saved,
                      float* y, float* lse, int B, int T);
void tpa_core_backward(const ModelConfig& c, const RopeTables& rope, const float* proj,
                       const float* saved, const float* y, const float* lse, const float* dy,
                       float* dproj, float* scratch, int B, int T);
void gqa_core_forward(const ModelConfig& c, const RopeTables& rope, float* proj, float* y,
                      float* lse, int B, int T);
void gqa_core_backward(const ModelConfig& c, const RopeTables& rope, const float* proj,
                       const float* y, const float* lse, const float* dy, float* dproj, int B,
                       int T);
// MLA: the core owns q_a_layernorm, q_b_proj, kv_a_layernorm and kv_b_proj (read from w).
// saved: latent norm outputs and their rstd, the assembled q, k (post-RoPE) and v.
size_t mla_saved_per_token(const ModelConfig& c);
size_t mla_scratch_per_token(const ModelConfig& c);
void mla_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                      float* proj, float* saved, float* y, float* lse, int B, int T);
void mla_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                       const float* proj, const float* saved, const float* y, const float* lse,
                       const float* dy, float* dproj, float* scratch, int B, int T);

}  // namespace t6
