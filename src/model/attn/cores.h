// The entry points of each kind's file, referenced by its row of the kinds table (kinds.cpp).
// Internal to the wing: everything else calls attention.h or reads kinds.h.
#pragma once
#include "model/attn/kinds.h"

namespace t6 {

// Signatures shared by every kind (attention.h has the contracts).
#define T6_ATTN_KIND_DECLS(k)                                                                      \
    std::vector<ProjectionSpec> k##_projections(const ModelConfig& c);                             \
    std::vector<CoreTensorSpec> k##_core_tensors(const ModelConfig& c);                            \
    long k##_cache_numbers(const ModelConfig& c);                                                  \
    Q8Layout k##_cache_q8_layout(const ModelConfig& c);                                            \
    double k##_decode_flops(const ModelConfig& c);                                                 \
    size_t k##_saved_per_token(const ModelConfig& c);                                              \
    size_t k##_scratch_per_token(const ModelConfig& c);                                            \
    void k##_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,    \
                          float* proj, float* saved, float* y, float* lse, int B, int T);          \
    void k##_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,   \
                           const float* proj, const float* saved, const float* y,                  \
                           const float* lse, const float* dy, float* dproj, float* scratch, int B, \
                           int T);                                                                 \
    void k##_cache_attention(const ModelConfig& c, KVCache& cache, int layer,                      \
                             const LayerParamRef& w, const RopeTables& rope, float* proj,          \
                             const NewTokens& t, float* y, std::vector<float>& scratch);

T6_ATTN_KIND_DECLS(gqa)  // attn/gqa.cpp: MHA, MQA, GQA
T6_ATTN_KIND_DECLS(tpa)  // attn/tpa.cpp: T6 and T6_kvonly
T6_ATTN_KIND_DECLS(mla)  // attn/mla.cpp

#undef T6_ATTN_KIND_DECLS

}  // namespace t6
