// The KV cache of incremental inference, allocated once for `max_slots` sequences of up to
// `max_seq` tokens. Per layer and token it holds one record of
//   MHA/MQA/GQA:  [K (h_kv*d_h) | V (h_kv*d_h)]                         2*h_kv*d_h numbers
//   TPA:          [A_K (h*R_K) | B_K (R_K*d_h) | A_V (h*R_V) | B_V (R_V*d_h)]   (R_K+R_V)(h+d_h)
//                 with B_K stored RoPE-rotated (Theorem 3.1), so no cached key is rotated again;
//   MLA:          [c_KV (d_c) | k_pe (d_h^R), rotated]                   d_c + d_h^R
//                 with c_KV stored after kv_a_layernorm (weight applied), i.e. exactly the input
//                 of kv_b_proj, so absorbed decoding needs no norm at read time
//                 (cache_attention_mla.cpp);
// in float32 or bfloat16. Layout: layer-major, then slot, then position, so one sequence's
// records are contiguous and stream from memory in order.
#pragma once
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/config.h"

namespace t6 {

enum class CacheType { f32, bf16 };
const char* cache_type_name(CacheType t);
CacheType parse_cache_type(const std::string& s);  // "f32" | "bf16"

// Numbers cached per token and layer (the formulas above).
long kv_record_numbers(const ModelConfig& c);

class KVCache {
  public:
    KVCache(const ModelConfig& c, int max_slots, int max_seq, CacheType type);

    int n_layer() const { return n_layer_; }
    int max_slots() const { return max_slots_; }
    int max_seq() const { return max_seq_; }
    CacheType type() const { return type_; }
    long record_numbers() const { return rec_; }
    size_t element_bytes() const { return type_ == CacheType::f32 ? 4 : 2; }
    size_t bytes() const { return data_.size(); }  // the whole allocation
    size_t bytes_per_token() const { return size_t(rec_) * element_bytes() * n_layer_; }

    // Start of the record of (layer, slot, pos) as float or bf16 (must match type()).
    float* f32(int layer, int slot, int pos) {
        return reinterpret_cast<float*>(data_.data()) + offset(layer, slot, pos);
    }
    uint16_t* bf16(int layer, int slot, int pos) {
        return reinterpret_cast<uint16_t*>(data_.data()) + offset(layer, slot, pos);
    }
    // Stores `rec` floats at (layer, slot, pos), converting to bf16 if needed.
    void store(int layer, int slot, int pos, const float* rec);

    // Tokens held per slot.
    int length(int slot) const { return len_[slot]; }
    void set_length(int slot, int n) { len_[slot] = n; }
    void clear(int slot) { len_[slot] = 0; }

  private:
    size_t offset(int layer, int slot, int pos) const {
        return ((size_t(layer) * max_slots_ + slot) * max_seq_ + pos) * size_t(rec_);
    }
    int n_layer_, max_slots_, max_seq_;
    CacheType type_;
    long rec_;
    AlignedArray<unsigned char> data_;
    std::vector<int> len_;
};

}  // namespace t6
