// The bookkeeping of a paged KV cache (docs/paged-cache.md): which of the pool's fixed-size blocks
// are free, how many sequences hold each one (reference counts), and the prefix cache: a full
// block is named by the hash of (its parent block's hash, its token ids), as in vLLM, so a new
// sequence whose prompt starts with cached full blocks shares them instead of recomputing them.
// A block no sequence holds any more but that still carries a prefix hash stays reusable in an
// LRU list until the pool needs it (then it is evicted: its hash forgotten). Only full blocks are
// hashed and shared, and a sequence never writes a full block again, so no block is ever written
// while shared (KVCache::set_length copies one that would be: copy-on-write).
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace t6 {

class BlockPool {
  public:
    BlockPool(long blocks, int block_tokens);

    long size() const { return long(ref_.size()); }
    int block_tokens() const { return tokens_; }
    // Blocks no sequence holds (never used, or cached for reuse) and of those the cached ones.
    long free_blocks() const { return long(free_.size() + lru_.size()); }
    long cached_blocks() const { return long(lru_.size()); }
    long used_blocks() const { return size() - free_blocks(); }
    int refs(int b) const { return ref_[size_t(b)]; }

    // A block for one holder: a never-used one first, else the least recently released cached
    // one (its hash forgotten); -1 when every block is held.
    int allocate();
    // One more holder of block b (which may be a cached free block).
    void retain(int b);
    // One holder less; at zero the block becomes free (kept in the LRU if it carries a hash).
    void release(int b);

    // The hash of a full block of `tokens` ids after the block hashed `parent` (0: the first).
    static uint64_t hash(uint64_t parent, const int32_t* tokens, int n);
    // The cached block with this hash and these ids (checked, so a collision is a miss), or -1.
    int lookup(uint64_t h, uint64_t parent, const int32_t* tokens) const;
    // Names block b (full, held) by hash h; false when another block already has that name.
    bool publish(int b, uint64_t h, uint64_t parent, const int32_t* tokens);
    // Forgets block b's hash (before it is written again).
    void unpublish(int b);
    bool published(int b) const { return hashed_[size_t(b)]; }

  private:
    int tokens_;
    std::vector<int> ref_;
    std::vector<int> free_;  // never used or no hash: a stack
    std::list<int> lru_;     // free with a hash, least recently released first
    std::vector<std::list<int>::iterator> lru_pos_;
    std::vector<char> in_lru_, hashed_;
    std::vector<uint64_t> hash_, parent_;
    std::vector<int32_t> ids_;  // (blocks, tokens) ids of published blocks
    std::unordered_map<uint64_t, int> by_hash_;
};

}  // namespace t6
