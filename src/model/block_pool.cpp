#include "model/block_pool.h"

#include <cstring>

#include "core/error.h"

namespace t6 {

BlockPool::BlockPool(long blocks, int block_tokens)
    : tokens_(block_tokens),
      ref_(size_t(blocks), 0),
      lru_pos_(size_t(blocks)),
      in_lru_(size_t(blocks), 0),
      hashed_(size_t(blocks), 0),
      hash_(size_t(blocks), 0),
      parent_(size_t(blocks), 0) {
    if (blocks <= 0 || block_tokens <= 0)
        fail("KV cache pool needs at least one block of at least one token (got ", blocks, " x ",
             block_tokens, ")");
    free_.reserve(size_t(blocks));
    for (long b = blocks - 1; b >= 0; b--) free_.push_back(int(b));
}

int BlockPool::allocate() {
    int b;
    if (!free_.empty()) {
        b = free_.back();
        free_.pop_back();
    } else if (!lru_.empty()) {
        b = lru_.front();
        lru_.pop_front();
        in_lru_[size_t(b)] = 0;
        unpublish(b);
    } else {
        return -1;
    }
    ref_[size_t(b)] = 1;
    return b;
}

void BlockPool::retain(int b) {
    if (in_lru_[size_t(b)]) {
        lru_.erase(lru_pos_[size_t(b)]);
        in_lru_[size_t(b)] = 0;
    }
    ref_[size_t(b)]++;
}

void BlockPool::release(int b) {
    T6_CHECK(ref_[size_t(b)] > 0);
    if (--ref_[size_t(b)] > 0) return;
    if (hashed_[size_t(b)]) {
        lru_pos_[size_t(b)] = lru_.insert(lru_.end(), b);
        in_lru_[size_t(b)] = 1;
    } else {
        free_.push_back(b);
    }
}

uint64_t BlockPool::hash(uint64_t parent, const int32_t* tokens, int n) {
    // splitmix64 steps over the parent hash and the ids: cheap, and a collision is caught by
    // lookup() comparing the ids.
    auto mix = [](uint64_t x) {
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        return x ^ (x >> 31);
    };
    uint64_t h = mix(parent ^ 0x5851f42d4c957f2dull);
    for (int i = 0; i < n; i++) h = mix(h ^ uint64_t(uint32_t(tokens[i])));
    return h == 0 ? 1 : h;
}

int BlockPool::lookup(uint64_t h, uint64_t parent, const int32_t* tokens) const {
    const auto it = by_hash_.find(h);
    if (it == by_hash_.end()) return -1;
    const int b = it->second;
    if (parent_[size_t(b)] != parent ||
        std::memcmp(&ids_[size_t(b) * tokens_], tokens, sizeof(int32_t) * size_t(tokens_)) != 0)
        return -1;
    return b;
}

bool BlockPool::publish(int b, uint64_t h, uint64_t parent, const int32_t* tokens) {
    if (hashed_[size_t(b)] || by_hash_.count(h)) return false;
    if (ids_.empty()) ids_.resize(ref_.size() * size_t(tokens_));
    std::memcpy(&ids_[size_t(b) * tokens_], tokens, sizeof(int32_t) * size_t(tokens_));
    by_hash_[h] = b;
    hash_[size_t(b)] = h;
    parent_[size_t(b)] = parent;
    hashed_[size_t(b)] = 1;
    return true;
}

void BlockPool::unpublish(int b) {
    if (!hashed_[size_t(b)]) return;
    by_hash_.erase(hash_[size_t(b)]);
    hashed_[size_t(b)] = 0;
    if (in_lru_[size_t(b)]) {  // a free block without a hash is simply free
        lru_.erase(lru_pos_[size_t(b)]);
        in_lru_[size_t(b)] = 0;
        free_.push_back(b);
    }
}

}  // namespace t6
