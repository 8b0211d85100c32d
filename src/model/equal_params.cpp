#include "model/equal_params.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "model/attn/kinds.h"
#include "model/params.h"

namespace t6 {

long attention_params_per_layer(const ModelConfig& c) {
    long n = 0;
    for (const auto& s : build_parameter_layout(c).specs)
        if (s.name.rfind("transformer.h.0.attn.", 0) == 0) n += long(s.numel);
    return n;
}

namespace {

// base as `kind` with `heads` query heads and the kind's KV heads (kinds table).
ModelConfig with_kind(const ModelConfig& base, const AttentionKindInfo& kind, int heads) {
    ModelConfig c = base;
    c.attention = kind.kind;
    c.n_head = heads;
    if (kind.equal_kv_heads > 0) c.n_kv_head = kind.equal_kv_heads;
    return c;
}

}  // namespace

int equal_param_heads(const ModelConfig& base, AttentionKind kind) {
    const AttentionKindInfo& k = kind_info(kind);
    const int mha_heads = std::max(1, base.n_embd / base.head_dim);
    if (k.heads_from_width) return mha_heads;
    const long target = 4L * base.n_embd * base.n_embd;
    int best = 1;
    long best_diff = -1;
    for (int h = 1; h <= 8 * mha_heads; h++) {
        if (h % k.equal_head_multiple != 0) continue;
        long diff = std::labs(attention_params_per_layer(with_kind(base, k, h)) - target);
        if (best_diff < 0 || diff < best_diff) {
            best = h;
            best_diff = diff;
        }
    }
    return best;
}

std::vector<ModelConfig> equal_param_variants(const ModelConfig& base) {
    std::vector<ModelConfig> out;
    for (const AttentionKindInfo& k : attention_kinds())
        out.push_back(with_kind(base, k, equal_param_heads(base, k.kind)));
    return out;
}

}  // namespace t6
