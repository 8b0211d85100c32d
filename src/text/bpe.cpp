#include "text/bpe.h"

#include <functional>
#include <mutex>
#include <queue>

#include "core/error.h"
#include "text/pretokenize.h"

namespace t6::text {

// A sharded cache of encoded pieces: a lock per shard keeps contention low when many threads
// encode at once. Each shard is cleared when it grows past its cap (memory stays bounded).
struct BytePairEncoder::Cache {
    static constexpr size_t kShards = 64;
    static constexpr size_t kMaxPerShard = 8192;
    static constexpr size_t kMaxPieceBytes = 128;  // longer pieces are rare and not cached
    struct Hash {  // transparent: look up by string_view without making a string
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Shard {
        std::mutex mu;
        std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
    };
    Shard shards[kShards];
};

BytePairEncoder::BytePairEncoder(const std::array<int32_t, 256>& byte_ids,
                                 const std::vector<BpeMerge>& merges,
                                 std::vector<std::string> token_bytes)
    : byte_ids_(byte_ids), token_bytes_(std::move(token_bytes)), cache_(std::make_unique<Cache>()) {
    ranks_.reserve(merges.size() * 2);
    for (size_t r = 0; r < merges.size(); ++r) {
        const BpeMerge& m = merges[r];
        uint64_t key = uint64_t(uint32_t(m.left)) << 32 | uint32_t(m.right);
        ranks_.emplace(key, Rank{int32_t(r), m.merged});  // first (lowest) rank wins
    }
}

BytePairEncoder::~BytePairEncoder() = default;

// For short pieces: the rank of each adjacent pair is kept in an array; each step merges the
// leftmost pair of lowest rank and looks up only the two pairs that changed (tiktoken's method).
// Merging the leftmost occurrence first is the same as the official sweep that merges every
// occurrence of the best pair left to right: a merge never makes a pair of the same rank.
void BytePairEncoder::merge_short(std::vector<int32_t>& syms) const {
    constexpr int32_t kNone = INT32_MAX;
    int32_t ranks[64];
    int32_t merged_ids[64];
    size_t n = syms.size();
    auto look = [&](size_t i) {
        const Rank* r = find(syms[i], syms[i + 1]);
        ranks[i] = r ? r->rank : kNone;
        merged_ids[i] = r ? r->merged : -1;
    };
    for (size_t i = 0; i + 1 < n; ++i) look(i);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; ++i)
            if (ranks[i] < ranks[best]) best = i;
        if (ranks[best] == kNone) break;
        syms[best] = merged_ids[best];
        for (size_t i = best + 1; i + 1 < n; ++i) {
            syms[i] = syms[i + 1];
            ranks[i] = ranks[i + 1];
            merged_ids[i] = merged_ids[i + 1];
        }
        --n;
        if (best + 1 < n) look(best);
        if (best > 0) look(best - 1);
    }
    syms.resize(n);
}

// The same result in O(m log m) for long pieces: a heap of candidate pairs ordered by (rank,
// position) over a linked list of symbols. Equal ranks are the same pair, merged left to right
// like merge_short's sweep; entries made stale by earlier merges are skipped when popped.
void BytePairEncoder::merge_long(std::vector<int32_t>& syms) const {
    const int n = int(syms.size());
    std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) prev[size_t(i)] = i - 1, next[size_t(i)] = i + 1 < n ? i + 1 : -1;
    struct Cand {
        int32_t rank;
        int pos;
        int32_t left, right;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int p) {
        if (p < 0) return;
        int q = next[size_t(p)];
        if (q < 0) return;
        if (const Rank* r = find(syms[size_t(p)], syms[size_t(q)]))
            heap.push({r->rank, p, syms[size_t(p)], syms[size_t(q)]});
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    std::vector<char> alive(size_t(n), 1);
    while (!heap.empty()) {
        Cand c = heap.top();
        heap.pop();
        int p = c.pos;
        if (!alive[size_t(p)]) continue;
        int q = next[size_t(p)];
        if (q < 0 || syms[size_t(p)] != c.left || syms[size_t(q)] != c.right) continue;
        syms[size_t(p)] = find(c.left, c.right)->merged;
        alive[size_t(q)] = 0;
        next[size_t(p)] = next[size_t(q)];
        if (next[size_t(q)] >= 0) prev[size_t(next[size_t(q)])] = p;
        push(prev[size_t(p)]);
        push(p);
    }
    size_t w = 0;
    for (int i = 0; i >= 0 && i < n; i = next[size_t(i)]) syms[w++] = syms[size_t(i)];
    syms.resize(w);
}

void BytePairEncoder::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.empty()) return;
    if (piece.size() == 1) {
        out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
        return;
    }
    const bool cacheable = piece.size() <= Cache::kMaxPieceBytes;
    Cache::Shard* shard = nullptr;
    if (cacheable) {
        shard = &cache_->shards[(Cache::Hash{}(piece) >> 7) % Cache::kShards];
        std::lock_guard<std::mutex> lock(shard->mu);
        auto it = shard->map.find(piece);
        if (it != shard->map.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::vector<int32_t> syms(piece.size());
    for (size_t i = 0; i < piece.size(); ++i)
        syms[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    if (syms.size() <= 64)
        merge_short(syms);
    else
        merge_long(syms);
    out.insert(out.end(), syms.begin(), syms.end());
    if (cacheable) {
        std::lock_guard<std::mutex> lock(shard->mu);
        if (shard->map.size() >= Cache::kMaxPerShard) shard->map.clear();
        shard->map.emplace(std::string(piece), std::move(syms));
    }
}

void BytePairEncoder::encode_text(std::string_view text, std::vector<int32_t>& out) const {
    thread_local std::vector<uint32_t> ends;
    ends.clear();
    pretokenize(text, ends);
    uint32_t begin = 0;
    for (uint32_t end : ends) {
        encode_piece(text.substr(begin, end - begin), out);
        begin = end;
    }
}

}  // namespace t6::text
