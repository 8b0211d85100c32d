// The KV cache of incremental inference, allocated once for `max_slots` sequences of up to
// `max_seq` tokens. Per layer and token it holds one record, whose layout each attention kind
// defines beside its cores (attn/gqa.cpp: [K | V]; attn/tpa.cpp: [A_K | A_V | B_K | B_V] with B_K
// rotated; attn/mla.cpp: [c_KV | k_pe] with c_KV normalised) and whose size is the kind's row of
// the kinds table (attn/kinds.h, cache_numbers),
// in float32 or bfloat16, or 8-bit (q8: every row of the record as int8 codes with one float32
// scale per row at the record's end, kernels/q8_cache.h; the record keeps a fixed size, so paging
// and addressing are the same for every type).
//
// The cache is paged (docs/paged-cache.md): one pool of fixed-size blocks of `block_tokens`
// tokens (every layer's records of those tokens), and per slot a block table, grown on demand as
// the sequence grows (reserve) and returned when it ends (clear). Layout: layer-major, then pool
// block, then position in the block, so a block's records are contiguous and the decoding kernels
// read them in place through the block table (CacheBlocks, kernels/flash_decode.h). With
// block_tokens 0 every slot gets one block of max_seq tokens: the contiguous cache, the same code
// path (what generate, eval and bench decode use). With prefix caching on, full blocks are named by
// the hash of their tokens and the ones before, and shared between sequences (BlockPool).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "kernels/flash_decode.h"
#include "kernels/q8_cache.h"
#include "model/block_pool.h"
#include "model/config.h"

namespace t6 {

enum class CacheType { f32, bf16, q8 };
const char* cache_type_name(CacheType t);
CacheType parse_cache_type(const std::string& s);  // "f32" | "bf16" | "q8"

// Numbers cached per token and layer (the kind's cache record, attn/kinds.h).
long kv_record_numbers(const ModelConfig& c);
// The q8 record layout of the model's kind (rows and scales, kernels/q8_cache.h).
Q8Layout kv_q8_layout(const ModelConfig& c);
// Bytes cached per token and layer in the given type (q8: codes, padding and scales).
long kv_record_bytes(const ModelConfig& c, CacheType t);

// Tokens a slot's one block holds in a contiguous cache of max_seq tokens: max_seq, rounded up
// to whole groups of 16 where B_K is grouped (float32 caches of the TPA kinds, KVCache::tpa_group).
int kv_contiguous_tokens(const ModelConfig& c, CacheType t, int max_seq);

// How the cache is paged: block_tokens 0 is one block of max_seq tokens per slot (contiguous);
// pool_blocks 0 is enough blocks for every slot to hold max_seq tokens.
struct CachePaging {
    int block_tokens = 0;
    long pool_blocks = 0;
};

class KVCache {
  public:
    KVCache(const ModelConfig& c, int max_slots, int max_seq, CacheType type,
            CachePaging paging = {});

    int n_layer() const { return n_layer_; }
    int max_slots() const { return max_slots_; }
    int max_seq() const { return max_seq_; }
    CacheType type() const { return type_; }
    long record_numbers() const { return numbers_; }
    // Elements of the cache's type per record (q8: bytes, scales included) and its layout.
    long record_elements() const { return rec_; }
    size_t record_bytes() const { return size_t(rec_) * element_bytes(); }
    const Q8Layout& q8_layout() const { return q8_; }
    size_t element_bytes() const {
        return type_ == CacheType::f32 ? 4 : type_ == CacheType::bf16 ? 2 : 1;
    }
    size_t bytes() const { return data_.size(); }  // the whole allocation
    size_t bytes_per_token() const { return size_t(rec_) * element_bytes() * n_layer_; }

    // Paging.
    int block_tokens() const { return B_; }
    size_t bytes_per_block() const { return bytes_per_token() * size_t(B_); }
    const BlockPool& pool() const { return pool_; }
    int blocks_for(int tokens) const { return (tokens + B_ - 1) / B_; }
    // Blocks `slot` lacks to hold `tokens` tokens.
    long blocks_needed(int slot, int tokens) const;
    // Gives `slot` the blocks to hold `tokens` tokens; false, changing nothing, when the pool
    // has too few free ones.
    bool reserve(int slot, int tokens);
    // Blocks held by slot (its block table).
    const std::vector<int>& table(int slot) const { return table_[size_t(slot)]; }

    // Start of the record of (layer, slot, pos) as float, bf16 or q8 bytes (must match type());
    // pos must be reserved.
    float* f32(int layer, int slot, int pos) {
        return reinterpret_cast<float*>(data_.data()) + offset(layer, slot, pos);
    }
    uint16_t* bf16(int layer, int slot, int pos) {
        return reinterpret_cast<uint16_t*>(data_.data()) + offset(layer, slot, pos);
    }
    int8_t* q8(int layer, int slot, int pos) {
        return reinterpret_cast<int8_t*>(data_.data()) + offset(layer, slot, pos);
    }
    // Stores record_numbers() floats at (layer, slot, pos), converting to bf16 or quantizing to
    // q8 if needed.
    void store(int layer, int slot, int pos, const float* rec);
    // FlashTPA's float32 record with B_K grouped (kTpaGroup, kernels/flash_decode.h): set for a
    // float32 cache of the TPA kinds when the blocks hold whole groups of 16 tokens (the
    // contiguous cache's block is rounded up to them; paged blocks of other sizes keep B_K in
    // place). The decoding kernels and store() read and write the records through these dims
    // (gather_f32 gives them back with B_K in place); 0 otherwise.
    int tpa_group() const { return tpa_.group; }
    const TpaCacheDims& tpa_dims() const { return tpa_; }
    // Reference hook (tests): an f32 cache that stores every record rounded through q8, i.e. holds
    // exactly the numbers a q8 cache dequantizes to.
    void set_q8_rounding(bool on) { q8_round_ = on; }
    // The slot's records of one layer as the decoding kernels read them (element type T).
    template <typename T>
    CacheBlocks<T> blocks(int layer, int slot) const {
        const T* base = reinterpret_cast<const T*>(data_.data()) + layer_offset(layer);
        return CacheBlocks<T>{base, table_[size_t(slot)].data(), long(B_) * rec_, B_};
    }
    // Records [0, n) of (layer, slot) contiguous: in place when they lie in one block, else
    // copied into buf (chunked prefill reads a bf16 history this way; float32 and q8 ones through
    // gather_f32, which also puts a grouped B_K back in place).
    template <typename T>
    const T* gather(int layer, int slot, int n, std::vector<T>& buf) const;
    // Records [0, n) as float32 (record_numbers() each) whatever the type, B_K in place: f32 as
    // gather (with B_K grouped, copied group by group with B_K in place), bf16 widened, q8
    // dequantized into buf.
    const float* gather_f32(int layer, int slot, int n, std::vector<float>& buf) const;

    // Tokens held per slot.
    int length(int slot) const { return len_[size_t(slot)]; }
    // Sets the length (growing: the positions must be reserved; shrinking keeps the blocks
    // that still hold tokens, copying a shared one that would be written).
    void set_length(int slot, int n);
    void clear(int slot);  // returns the slot's blocks to the pool

    // Prefix cache. When on, the decoder reports every token it appends (note_tokens) and full
    // blocks are published; share_prefix gives an empty slot the cached blocks that start a
    // prompt (at most n - 1 tokens, so the prompt's last token is always computed).
    void set_prefix_caching(bool on) { prefix_ = on; }
    bool prefix_caching() const { return prefix_; }
    int share_prefix(int slot, const int32_t* tokens, int n);
    void note_tokens(int slot, int pos, const int32_t* tokens, int n);
    struct PrefixStats {
        uint64_t queries = 0, hit_blocks = 0, hit_tokens = 0;
    };
    const PrefixStats& prefix_stats() const { return stats_; }

  private:
    size_t layer_offset(int layer) const {
        return size_t(layer) * size_t(pool_.size()) * B_ * rec_;
    }
    size_t offset(int layer, int slot, int pos) const {
        const int b = table_[size_t(slot)][size_t(pos / B_)];
        return layer_offset(layer) + (size_t(b) * B_ + size_t(pos % B_)) * size_t(rec_);
    }
    void copy_block(int from, int to);
    int n_layer_, max_slots_, max_seq_;
    CacheType type_;
    long numbers_;  // numbers per record
    Q8Layout q8_;
    long rec_;  // elements of the type per record
    bool q8_round_ = false;
    TpaCacheDims tpa_;  // group > 0: B_K grouped (tpa_group)
    int B_;
    BlockPool pool_;
    AlignedArray<unsigned char> data_;
    std::vector<int> len_;
    std::vector<std::vector<int>> table_;
    // Prefix caching: each slot's token ids and the hashes of its full blocks.
    bool prefix_ = false;
    std::vector<std::vector<int32_t>> ids_;
    std::vector<std::vector<uint64_t>> hashes_;
    PrefixStats stats_;
};

}  // namespace t6
