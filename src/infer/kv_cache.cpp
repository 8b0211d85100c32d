#include "infer/kv_cache.h"

#include <cstring>

#include "core/error.h"
#include "kernels/flash_decode.h"

namespace t6 {

const char* cache_type_name(CacheType t) {
    return t == CacheType::f32 ? "f32" : "bf16";
}

CacheType parse_cache_type(const std::string& s) {
    if (s == "f32" || s == "float32") return CacheType::f32;
    if (s == "bf16" || s == "bfloat16") return CacheType::bf16;
    fail("cache type '", s, "' is not f32 or bf16");
}

long kv_record_numbers(const ModelConfig& c) {
    switch (c.attention) {
        case AttentionKind::mha:
        case AttentionKind::mqa:
        case AttentionKind::gqa:
            return 2L * c.kv_heads() * c.head_dim;
        case AttentionKind::tpa:
        case AttentionKind::tpa_kvonly:
            return long(c.k_rank + c.v_rank) * (c.n_head + c.head_dim);
        case AttentionKind::mla:
            return long(c.kv_lora_rank) + c.qk_rope_head_dim;
    }
    return 0;
}

KVCache::KVCache(const ModelConfig& c, int max_slots, int max_seq, CacheType type)
    : n_layer_(c.n_layer),
      max_slots_(max_slots),
      max_seq_(max_seq),
      type_(type),
      rec_(kv_record_numbers(c)),
      len_(size_t(max_slots), 0) {
    if (max_slots <= 0 || max_seq <= 0)
        fail("KV cache needs at least one slot and one position (got ", max_slots, " x ", max_seq,
             ")");
    const double bytes = double(n_layer_) * max_slots * max_seq * rec_ * element_bytes();
    if (bytes > 1e12) fail("KV cache of ", bytes / 1e9, " GB is too large");
    // Zero-filled: every page is touched once, here. Huge pages: decoding streams the cache.
    data_.resize(size_t(bytes), true);
}

void KVCache::store(int layer, int slot, int pos, const float* rec) {
    if (type_ == CacheType::f32) {
        std::memcpy(f32(layer, slot, pos), rec, sizeof(float) * rec_);
    } else {
        uint16_t* dst = bf16(layer, slot, pos);
        for (long i = 0; i < rec_; i++) dst[i] = float_to_bf16(rec[i]);
    }
}

}  // namespace t6
