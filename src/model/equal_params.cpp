#include "model/equal_params.h"

#include <cmath>
#include <cstdlib>

#include "model/params.h"

namespace t6 {

long attention_params_per_layer(const ModelConfig& c) {
    long n = 0;
    for (const auto& s : build_parameter_layout(c).specs)
        if (s.name.rfind("transformer.h.0.attn.", 0) == 0) n += long(s.numel);
    return n;
}

namespace {

ModelConfig with_kind(const ModelConfig& base, AttentionKind kind, int heads) {
    ModelConfig c = base;
    c.attention = kind;
    c.n_head = heads;
    if (kind == AttentionKind::mqa) c.n_kv_head = 1;
    if (kind == AttentionKind::gqa) c.n_kv_head = 2;
    return c;
}

}  // namespace

int equal_param_heads(const ModelConfig& base, AttentionKind kind) {
    const int mha_heads = std::max(1, base.n_embd / base.head_dim);
    if (kind == AttentionKind::mha) return mha_heads;
    const long target = 4L * base.n_embd * base.n_embd;
    int best = 1;
    long best_diff = -1;
    for (int h = 1; h <= 8 * mha_heads; h++) {
        if (kind == AttentionKind::gqa && h % 2 != 0) continue;
        long diff = std::labs(attention_params_per_layer(with_kind(base, kind, h)) - target);
        if (best_diff < 0 || diff < best_diff) {
            best = h;
            best_diff = diff;
        }
    }
    return best;
}

std::vector<ModelConfig> equal_param_variants(const ModelConfig& base) {
    std::vector<ModelConfig> out;
    for (AttentionKind k : {AttentionKind::mha, AttentionKind::mqa, AttentionKind::gqa,
                            AttentionKind::mla, AttentionKind::tpa, AttentionKind::tpa_kvonly})
        out.push_back(with_kind(base, k, equal_param_heads(base, k)));
    return out;
}

}  // namespace t6
