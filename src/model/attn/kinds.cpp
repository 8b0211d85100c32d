// The kinds table: one row per attention kind. The functions each row names live in the kind's
// own file (cores.h lists them).
#include "model/attn/kinds.h"

#include "core/error.h"
#include "model/attn/cores.h"

namespace t6 {

// Row fields in order: kind, config name, preset suffix, display name; the kind's functions
// (T6_KIND_FNS: projections, core tensors, cache numbers, q8 layout, decode FLOPs, extra forward
// FLOPs, saved, scratch, forward, backward, cached core); equal-parameter KV heads, head
// multiple, heads from width.
#define T6_KIND_FNS(k)                                                                           \
    k##_projections, k##_core_tensors, k##_cache_numbers, k##_cache_q8_layout, k##_decode_flops, \
        k##_extra_flops, k##_saved_per_token, k##_scratch_per_token, k##_core_forward,           \
        k##_core_backward, k##_cache_attention

const std::vector<AttentionKindInfo>& attention_kinds() {
    static const std::vector<AttentionKindInfo> rows = {
        {AttentionKind::mha, "mha", "mha", "MHA", T6_KIND_FNS(gqa), 0, 1, true},
        {AttentionKind::mqa, "mqa", "mqa", "MQA", T6_KIND_FNS(gqa), 1, 1, false},
        {AttentionKind::gqa, "gqa", "gqa", "GQA", T6_KIND_FNS(gqa), 2, 2, false},
        {AttentionKind::mla, "mla", "mla", "MLA", T6_KIND_FNS(mla), 0, 1, false},
        {AttentionKind::tpa, "tpa", "t6", "T6 (TPA)", T6_KIND_FNS(tpa), 0, 1, false},
        {AttentionKind::tpa_kvonly, "tpa_kvonly", "t6-kvonly", "T6 (TPA-KVonly)", T6_KIND_FNS(tpa),
         0, 1, false},
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
