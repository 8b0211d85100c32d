// One table of per-kind facts: a row per attention kind (mha, mqa, gqa, mla, t6 = tpa,
// t6-kvonly = tpa_kvonly) with its names, the column blocks of its fused input projection, its
// own tensors beyond that projection, its KV-cache record, its decoding FLOPs per cached token,
// its equal-parameter head rule and its cores. Everything else (parameter layout, presets,
// `t6 kv`, `t6 info`, the study, the decoder, decode_cost, equal_params) reads this table; the
// functions a row points to live in the kind's own file (attn/gqa.cpp, attn/tpa.cpp,
// attn/mla.cpp). Adding a kind: docs/adding-an-attention-kind.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/q8_cache.h"
#include "model/attn/attention.h"
#include "model/config.h"
#include "model/params.h"

namespace t6 {

// A tensor a core owns beyond the fused projection (MLA's latent norms and up-projections): name
// without "transformer.h.{i}.attn." and its shape.
struct CoreTensorSpec {
    std::string name;
    std::vector<int64_t> shape;
};

struct AttentionKindInfo {
    AttentionKind kind;
    const char* config_name;    // the config's "attention" value (attention_kind_name)
    const char* preset_suffix;  // presets <size>-<suffix>, `t6 kv`, the study
    const char* display_name;   // tables and reports

    // Parameters: the fused input projection's column blocks in buffer order (official names
    // without "attn." / ".weight", output widths), then the core's own tensors (after the
    // projections, in the order of CoreWeights).
    std::vector<ProjectionSpec> (*projections)(const ModelConfig&);
    std::vector<CoreTensorSpec> (*core_tensors)(const ModelConfig&);

    // KV cache: floats per token per layer (one record), its q8 layout (kernels/q8_cache.h).
    long (*cache_numbers)(const ModelConfig&);
    Q8Layout (*cache_q8_layout)(const ModelConfig&);
    // Decoding: attention FLOPs per cached token per layer (scores and values of one query).
    double (*decode_flops)(const ModelConfig&);
    // Training forward: FLOPs per token per layer beyond the weight matmuls and the attention
    // itself (TPA: forming Q, K, V from the factors; model_stats.h forward_flops_per_token).
    double (*extra_flops)(const ModelConfig&);

    // Cores (attention.h has the contracts).
    size_t (*saved_per_token)(const ModelConfig&);
    size_t (*scratch_per_token)(const ModelConfig&);
    void (*forward)(const ModelConfig&, const LayerParamRef&, const RopeTables&, float* proj,
                    float* saved, float* y, float* lse, int B, int T);
    void (*backward)(const ModelConfig&, const LayerParamRef&, const RopeTables&, const float* proj,
                     const float* saved, const float* y, const float* lse, const float* dy,
                     float* dproj, float* scratch, int B, int T);
    void (*cache)(const ModelConfig&, KVCache&, int layer, const LayerParamRef&, const RopeTables&,
                  float* proj, const NewTokens&, float* y, std::vector<float>& scratch);

    // Equal-parameter rule (equal_params.h): kv_heads the KV heads given to a variant (0: as many
    // as query heads), head_multiple the step of head counts searched (GQA: 2, so two KV heads
    // divide them), heads_from_width true for the reference kind whose head count is
    // n_embd / head_dim (MHA: attention parameters 4 C^2, the target of the others).
    int equal_kv_heads;
    int equal_head_multiple;
    bool heads_from_width;
};

// Every kind, in display order (mha, mqa, gqa, mla, t6, t6-kvonly).
const std::vector<AttentionKindInfo>& attention_kinds();
const AttentionKindInfo& kind_info(AttentionKind k);
inline const AttentionKindInfo& kind_info(const ModelConfig& c) {
    return kind_info(c.attention);
}
// The row whose preset suffix or config name is `name`, or nullptr.
const AttentionKindInfo* find_kind(const std::string& name);
// "mha, mqa, gqa, mla, t6, t6-kvonly" (preset suffixes, for messages).
std::string preset_suffix_list();

}  // namespace t6
