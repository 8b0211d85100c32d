// The kinds table (model/attn/kinds.h) agrees with what the model actually allocates and caches,
// for every preset: the fused projection's column blocks are the layout's attention tensors, the
// core's own tensors follow them, the cache record is the paper's formula and what a KV cache of
// that model allocates, the names round-trip, and the equal-parameter rule gives the presets' head
// counts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "model/attn/attention.h"
#include "model/attn/kinds.h"
#include "model/config.h"
#include "model/equal_params.h"
#include "model/kv_cache.h"
#include "model/params.h"

using namespace t6;

namespace {

// Floats cached per token and layer, restated from the paper / official code (not the table).
long expected_record(const ModelConfig& c) {
    switch (c.attention) {
        case AttentionKind::mha:
        case AttentionKind::mqa:
        case AttentionKind::gqa:
            return 2L * c.kv_heads() * c.head_dim;  // K and V of every KV head
        case AttentionKind::tpa:
        case AttentionKind::tpa_kvonly:
            return long(c.k_rank + c.v_rank) * (c.n_head + c.head_dim);  // paper Sec. 3.3
        case AttentionKind::mla:
            return long(c.kv_lora_rank) + c.qk_rope_head_dim;  // c_KV and the shared k_pe
    }
    return -1;
}

}  // namespace

TEST(AttnKinds, EveryEnumValueHasOneRow) {
    int n = 0;
    for (AttentionKind k : {AttentionKind::mha, AttentionKind::mqa, AttentionKind::gqa,
                            AttentionKind::tpa, AttentionKind::tpa_kvonly, AttentionKind::mla}) {
        EXPECT_EQ(kind_info(k).kind, k);
        n++;
    }
    EXPECT_EQ(attention_kinds().size(), size_t(n));
}

TEST(AttnKinds, TableAgreesWithLayoutAndCacheForEveryPreset) {
    for (const std::string& name : preset_names()) {
        SCOPED_TRACE(name);
        const ModelConfig c = preset_config(name);
        const AttentionKindInfo& k = kind_info(c);
        // Names: the preset suffix, the config name and the parser agree.
        EXPECT_EQ(name.substr(name.find('-') + 1), k.preset_suffix);
        EXPECT_EQ(std::string(attention_kind_name(c.attention)), k.config_name);
        EXPECT_EQ(parse_attention_kind(k.config_name, "test"), c.attention);
        EXPECT_EQ(parse_attention_kind(k.preset_suffix, "test"), c.attention);
        // Projection blocks: adjacent tensors of layer 0, in order, of the listed widths.
        const ParameterLayout L = build_parameter_layout(c);
        size_t at = L.at("transformer.h.0.attn." + k.projections(c)[0].name + ".weight").offset;
        int P = 0;
        for (const auto& p : k.projections(c)) {
            const ParamSpec& s = L.at("transformer.h.0.attn." + p.name + ".weight");
            EXPECT_EQ(s.offset, at) << p.name;
            EXPECT_EQ(s.shape[0], p.rows) << p.name;
            EXPECT_EQ(s.shape[1], c.n_embd) << p.name;
            at += s.numel;
            P += p.rows;
        }
        EXPECT_EQ(projection_width(c), P);
        // The core's own tensors, resolved once, are the layout's.
        const CoreWeights cw = attention_core_weights(c, L, 0);
        const auto tensors = k.core_tensors(c);
        for (size_t i = 0; i < cw.size(); i++) {
            if (i >= tensors.size()) {
                EXPECT_EQ(cw[i], kNoWeight);
                continue;
            }
            const ParamSpec& s = L.at("transformer.h.0.attn." + tensors[i].name);
            EXPECT_EQ(cw[i], s.offset);
            EXPECT_EQ(s.shape, tensors[i].shape);
        }
        // Cache record: the formula, kv_record_numbers and the q8 layout.
        EXPECT_EQ(k.cache_numbers(c), expected_record(c));
        EXPECT_EQ(kv_record_numbers(c), expected_record(c));
        EXPECT_EQ(k.cache_q8_layout(c).numbers, expected_record(c));
        EXPECT_GT(k.decode_flops(c), 0.0);
        // Equal parameters: the rule gives the tiny presets' heads at their shape; the paper's
        // sizes keep the official configs' head counts, which are within one head of it.
        if (name.rfind("tiny-", 0) == 0)
            EXPECT_EQ(equal_param_heads(c, c.attention), c.n_head);
        else
            EXPECT_LE(std::abs(equal_param_heads(c, c.attention) - c.n_head), 1);
    }
}

TEST(AttnKinds, CacheAllocatesTheTableRecord) {
    for (const auto& k : attention_kinds()) {
        SCOPED_TRACE(k.preset_suffix);
        const ModelConfig c = preset_config(std::string("tiny-") + k.preset_suffix);
        KVCache f32(c, 2, 8, CacheType::f32), q8(c, 2, 8, CacheType::q8);
        EXPECT_EQ(f32.record_numbers(), k.cache_numbers(c));
        EXPECT_EQ(f32.bytes_per_token(), size_t(4 * k.cache_numbers(c) * c.n_layer));
        EXPECT_EQ(q8.record_elements(), k.cache_q8_layout(c).bytes);
        EXPECT_EQ(find_kind(k.preset_suffix), &k);
        EXPECT_EQ(find_kind(k.config_name), &k);
    }
    EXPECT_EQ(find_kind("nope"), nullptr);
}
