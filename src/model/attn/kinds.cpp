// The kinds table: one row per attention kind. The functions each row names live in the kind's
// own file (cores.h lists them).
#include "model/attn/kinds.h"

#include "core/error.h"
#include "model/attn/cores.h"

namespace t6 {

// Row fields in order: kind, config name, preset suffix, display name; projections, core tensors;
// cache numbers, q8 layout, decode FLOPs, extra forward FLOPs; equal-parameter KV heads, head
// multiple, heads from width; saved, scratch, forward, backward, cached core.
#define T6_KIND_FNS(k)                                                               \
    k##_saved_per_token, k##_scratch_per_token, k##_core_forward, k##_core_backward, \
        k##_cache_attention

const std::vector<AttentionKindInfo>& attention_kinds() {
    static const std::vector<AttentionKindInfo> rows = {
        {AttentionKind::mha, "mha", "mha", "MHA", gqa_projections, gqa_core_tensors,
         gqa_cache_numbers, gqa_cache_q8_layout, gqa_decode_flops, gqa_extra_flops, 0, 1, true,
         T6_KIND_FNS(gqa)},
        {AttentionKind::mqa, "mqa", "mqa", "MQA", gqa_projections, gqa_core_tensors,
         gqa_cache_numbers, gqa_cache_q8_layout, gqa_decode_flops, gqa_extra_flops, 1, 1, false,
         T6_KIND_FNS(gqa)},
        {AttentionKind::gqa, "gqa", "gqa", "GQA", gqa_projections, gqa_core_tensors,
         gqa_cache_numbers, gqa_cache_q8_layout, gqa_decode_flops, gqa_extra_flops, 2, 2, false,
         T6_KIND_FNS(gqa)},
        {AttentionKind::mla, "mla", "mla", "MLA", mla_projections, mla_core_tensors,
         mla_cache_numbers, mla_cache_q8_layout, mla_decode_flops, mla_extra_flops, 0, 1, false,
         T6_KIND_FNS(mla)},
        {AttentionKind::tpa, "tpa", "t6", "T6 (TPA)", tpa_projections, tpa_core_tensors,
         tpa_cache_numbers, tpa_cache_q8_layout, tpa_decode_flops, tpa_extra_flops, 0, 1, false,
         T6_KIND_FNS(tpa)},
        {AttentionKind::tpa_kvonly, "tpa_kvonly", "t6-kvonly", "T6 (TPA-KVonly)", tpa_projections,
         tpa_core_tensors, tpa_cache_numbers, tpa_cache_q8_layout, tpa_decode_flops,
         tpa_extra_flops, 0, 1, false, T6_KIND_FNS(tpa)},
    };
    return rows;
}

#undef T6_KIND_FNS

const AttentionKindInfo& kind_info(AttentionKind k) {
    for (const auto& r : attention_kinds())
        if (r.kind == k) return r;
    T6_CHECK(false, "attention kind ", int(k), " has no row in the kinds table");
    return attention_kinds()[0];
}

const AttentionKindInfo* find_kind(const std::string& name) {
    for (const auto& r : attention_kinds())
        if (name == r.preset_suffix || name == r.config_name) return &r;
    return nullptr;
}

std::string preset_suffix_list() {
    std::string s;
    for (const auto& r : attention_kinds())
        s += (s.empty() ? "" : ", ") + std::string(r.preset_suffix);
    return s;
}

}  // namespace t6
