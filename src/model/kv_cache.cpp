#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/flash_decode.h"
#include "model/attn/kinds.h"

namespace t6 {

const char* cache_type_name(CacheType t) {
    return t == CacheType::f32 ? "f32" : t == CacheType::bf16 ? "bf16" : "q8";
}

CacheType parse_cache_type(const std::string& s) {
    if (s == "f32" || s == "float32") return CacheType::f32;
    if (s == "bf16" || s == "bfloat16") return CacheType::bf16;
    if (s == "q8" || s == "int8") return CacheType::q8;
    fail("cache type '", s, "' is not f32, bf16 or q8");
}

long kv_record_numbers(const ModelConfig& c) {
    return kind_info(c).cache_numbers(c);
}

Q8Layout kv_q8_layout(const ModelConfig& c) {
    return kind_info(c).cache_q8_layout(c);
}

long kv_record_bytes(const ModelConfig& c, CacheType t) {
    if (t == CacheType::q8) return kv_q8_layout(c).bytes;
    return kv_record_numbers(c) * (t == CacheType::f32 ? 4 : 2);
}

namespace {
// FlashTPA's record with B_K grouped (TpaCacheDims, kernels/flash_decode.h): float32 caches of
// the TPA kinds whose shape allows it; the cache's blocks must then hold whole groups.
TpaCacheDims tpa_dims_of(const ModelConfig& c) {
    return TpaCacheDims{c.n_head, c.k_rank, c.v_rank, c.head_dim};
}
bool tpa_groupable(const ModelConfig& c, CacheType t) {
    return t == CacheType::f32 &&
           (c.attention == AttentionKind::tpa || c.attention == AttentionKind::tpa_kvonly) &&
           tpa_dims_of(c).can_group();
}
// One block of max_seq tokens (rounded up to whole groups where B_K is grouped) or the paging's.
int block_tokens_of(CachePaging p, int max_seq, bool groupable) {
    if (p.block_tokens < 0)
        fail("KV cache block size must be >= 1 token (got ", p.block_tokens, ")");
    if (p.block_tokens > 0) return p.block_tokens;
    // (Past the largest int, max_seq as it is: B_K then stays in place, and the cache's size
    // check reports it.)
    const long rounded = tpa_group_tokens(max_seq);
    return groupable && rounded <= std::numeric_limits<int>::max() ? int(rounded) : max_seq;
}
long pool_blocks_of(CachePaging p, int max_slots, int max_seq, bool groupable) {
    const int B = block_tokens_of(p, max_seq, groupable);
    if (p.pool_blocks < 0) fail("KV cache pool must hold >= 1 block (got ", p.pool_blocks, ")");
    return p.pool_blocks > 0 ? p.pool_blocks : long(max_slots) * ((max_seq + B - 1) / B);
}
}  // namespace

int kv_contiguous_tokens(const ModelConfig& c, CacheType t, int max_seq) {
    return block_tokens_of(CachePaging{}, max_seq, tpa_groupable(c, t));
}

KVCache::KVCache(const ModelConfig& c, int max_slots, int max_seq, CacheType type,
                 CachePaging paging)
    : n_layer_(c.n_layer),
      max_slots_(max_slots),
      max_seq_(max_seq),
      type_(type),
      numbers_(kv_record_numbers(c)),
      q8_(kv_q8_layout(c)),
      rec_(type == CacheType::q8 ? q8_.bytes : numbers_),
      B_(max_seq > 0 ? block_tokens_of(paging, max_seq, tpa_groupable(c, type)) : 1),
      pool_(max_slots > 0 && max_seq > 0
                ? pool_blocks_of(paging, max_slots, max_seq, tpa_groupable(c, type))
                : 1,
            B_),
      len_(size_t(std::max(max_slots, 0)), 0),
      table_(size_t(std::max(max_slots, 0))),
      ids_(size_t(std::max(max_slots, 0))),
      hashes_(size_t(std::max(max_slots, 0))) {
    if (max_slots <= 0 || max_seq <= 0)
        fail("KV cache needs at least one slot and one position (got ", max_slots, " x ", max_seq,
             ")");
    const double bytes = double(n_layer_) * double(pool_.size()) * B_ * rec_ * element_bytes();
    if (bytes > 1e12) fail("KV cache of ", bytes / 1e9, " GB is too large");
    if (tpa_groupable(c, type) && B_ % kTpaGroup == 0) {
        tpa_ = tpa_dims_of(c);
        tpa_.group = kTpaGroup;
    }
    // Zero-filled: every page is touched once, here. Huge pages: decoding streams the cache.
    data_.resize(size_t(bytes), true);
}

void KVCache::store(int layer, int slot, int pos, const float* rec) {
    if (type_ == CacheType::f32) {
        float* dst = f32(layer, slot, pos);
        if (q8_round_) {
            thread_local std::vector<int8_t> q;
            thread_local std::vector<float> rounded;
            q.resize(size_t(q8_.bytes));
            rounded.resize(size_t(rec_));
            q8_quantize_record(q.data(), rec, q8_);
            q8_dequantize_records_scalar(rounded.data(), q.data(), 1, q8_);
            rec = rounded.data();
        }
        if (tpa_.group > 0)
            write_tpa_record(dst, pos, rec, tpa_);  // B_K into the slots of pos's group
        else
            std::memcpy(dst, rec, sizeof(float) * rec_);
    } else if (type_ == CacheType::bf16) {
        uint16_t* dst = bf16(layer, slot, pos);
        for (long i = 0; i < rec_; i++) dst[i] = float_to_bf16(rec[i]);
    } else {
        q8_quantize_record(q8(layer, slot, pos), rec, q8_);
    }
}

long KVCache::blocks_needed(int slot, int tokens) const {
    return std::max(0L, long(blocks_for(tokens)) - long(table_[size_t(slot)].size()));
}

bool KVCache::reserve(int slot, int tokens) {
    if (tokens > max_seq_) return false;
    const long need = blocks_needed(slot, tokens);
    if (need > pool_.free_blocks()) return false;
    for (long i = 0; i < need; i++) table_[size_t(slot)].push_back(pool_.allocate());
    return true;
}

template <typename T>
const T* KVCache::gather(int layer, int slot, int n, std::vector<T>& buf) const {
    const CacheBlocks<T> v = blocks<T>(layer, slot);
    if (n <= B_) return v.at(0, rec_);
    buf.resize(size_t(n) * rec_);
    for (int j = 0; j < n; j += B_) {
        const int m = std::min(B_, n - j);
        std::memcpy(buf.data() + size_t(j) * rec_, v.at(j, rec_), sizeof(T) * size_t(m) * rec_);
    }
    return buf.data();
}
template const float* KVCache::gather(int, int, int, std::vector<float>&) const;
template const uint16_t* KVCache::gather(int, int, int, std::vector<uint16_t>&) const;

const float* KVCache::gather_f32(int layer, int slot, int n, std::vector<float>& buf) const {
    if (type_ == CacheType::f32 && tpa_.group > 0) {
        // B_K grouped: the records with B_K in place, group by group (the chunked prefill's
        // tiles read rows; one pass over the history per chunk, against the chunk's attention
        // over it).
        buf.resize(size_t(tpa_group_tokens(n)) * rec_);
        const CacheBlocks<float> v = blocks<float>(layer, slot);
        for (int g = 0; g < n; g += kTpaGroup)
            ungroup_tpa_records(buf.data() + size_t(g) * rec_, v.at(g, rec_), tpa_);
        return buf.data();
    }
    if (type_ == CacheType::f32) return gather<float>(layer, slot, n, buf);
    buf.resize(size_t(n) * numbers_);
    for (int j = 0; j < n; j += B_) {
        const int m = std::min(B_, n - j);
        float* dst = buf.data() + size_t(j) * numbers_;
        if (type_ == CacheType::bf16)
            bf16_to_float_serial(dst, blocks<uint16_t>(layer, slot).at(j, rec_), size_t(m) * rec_);
        else
            q8_dequantize_records(dst, blocks<int8_t>(layer, slot).at(j, rec_), m, q8_);
    }
    return buf.data();
}

void KVCache::copy_block(int from, int to) {
    const size_t bytes = size_t(B_) * rec_ * element_bytes();
    for (int l = 0; l < n_layer_; l++) {
        unsigned char* base = data_.data() + layer_offset(l) * element_bytes();
        std::memcpy(base + size_t(to) * bytes, base + size_t(from) * bytes, bytes);
    }
}

void KVCache::set_length(int slot, int n) {
    std::vector<int>& t = table_[size_t(slot)];
    if (n < len_[size_t(slot)]) {
        // Blocks past the new end go back to the pool; the block that will be written next must
        // be this slot's alone and unnamed.
        const size_t keep = size_t(blocks_for(n));
        while (t.size() > keep) {
            pool_.release(t.back());
            t.pop_back();
        }
        if (n % B_ != 0) {
            int& b = t.back();
            if (pool_.refs(b) > 1) {  // copy-on-write
                const int fresh = pool_.allocate();
                if (fresh < 0) fail("KV cache pool exhausted (copy-on-write of a shared block)");
                copy_block(b, fresh);
                pool_.release(b);
                b = fresh;
            } else {
                pool_.unpublish(b);
            }
        }
        if (ids_[size_t(slot)].size() > size_t(n)) ids_[size_t(slot)].resize(size_t(n));
        if (hashes_[size_t(slot)].size() > size_t(n / B_))
            hashes_[size_t(slot)].resize(size_t(n / B_));
    } else {
        T6_CHECK(size_t(blocks_for(n)) <= t.size());
    }
    len_[size_t(slot)] = n;
}

void KVCache::clear(int slot) {
    for (int b : table_[size_t(slot)]) pool_.release(b);
    table_[size_t(slot)].clear();
    ids_[size_t(slot)].clear();
    hashes_[size_t(slot)].clear();
    len_[size_t(slot)] = 0;
}

int KVCache::share_prefix(int slot, const int32_t* tokens, int n) {
    if (!prefix_ || len_[size_t(slot)] != 0 || !table_[size_t(slot)].empty()) return 0;
    stats_.queries++;
    std::vector<int>& t = table_[size_t(slot)];
    std::vector<uint64_t>& hs = hashes_[size_t(slot)];
    uint64_t parent = 0;
    for (int k = 0; (k + 1) * B_ <= n - 1; k++) {
        const int32_t* ids = tokens + size_t(k) * B_;
        const uint64_t h = BlockPool::hash(parent, ids, B_);
        const int b = pool_.lookup(h, parent, ids);
        if (b < 0) break;
        pool_.retain(b);
        t.push_back(b);
        hs.push_back(h);
        parent = h;
    }
    const int shared = int(t.size()) * B_;
    ids_[size_t(slot)].assign(tokens, tokens + shared);
    len_[size_t(slot)] = shared;
    stats_.hit_blocks += t.size();
    stats_.hit_tokens += uint64_t(shared);
    return shared;
}

void KVCache::note_tokens(int slot, int pos, const int32_t* tokens, int n) {
    if (!prefix_) return;
    std::vector<int32_t>& ids = ids_[size_t(slot)];
    if (ids.size() != size_t(pos)) return;  // history unknown (e.g. set_length jumps): no names
    ids.insert(ids.end(), tokens, tokens + n);
    std::vector<uint64_t>& hs = hashes_[size_t(slot)];
    // Publish every block that is now full.
    while (size_t(hs.size() + 1) * B_ <= ids.size()) {
        const size_t k = hs.size();
        const uint64_t parent = k == 0 ? 0 : hs[k - 1];
        const int32_t* blk = ids.data() + k * B_;
        const uint64_t h = BlockPool::hash(parent, blk, B_);
        pool_.publish(table_[size_t(slot)][k], h, parent, blk);  // false: an equal block exists
        hs.push_back(h);
    }
}

}  // namespace t6
