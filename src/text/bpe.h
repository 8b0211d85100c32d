// Byte-level BPE: a piece of text (one pre-token) starts as its bytes, each a token, and the
// adjacent pair with the lowest merge rank is merged, all its occurrences left to right, until no
// pair has a rank. GPT-2's tokenizer and t6's trained BPE tokenizers share this engine.
// Encoded pieces are cached (thread-safe, sharded), so common words cost one hash lookup.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace t6::text {

struct BpeMerge {
    int32_t left = 0, right = 0, merged = 0;  // token ids
};

class BytePairEncoder {
  public:
    // byte_ids[b]: the id of the one-byte token b; merges in rank order (rank = index);
    // token_bytes[id]: the bytes each id decodes to (every id < token_bytes.size()).
    BytePairEncoder(const std::array<int32_t, 256>& byte_ids, const std::vector<BpeMerge>& merges,
                    std::vector<std::string> token_bytes);
    ~BytePairEncoder();

    // Appends the ids of one pre-token.
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
    // Pre-tokenizes (GPT-2 pattern) and encodes every piece.
    void encode_text(std::string_view text, std::vector<int32_t>& out) const;

    const std::string& token_bytes(int32_t id) const { return token_bytes_[size_t(id)]; }
    size_t num_tokens() const { return token_bytes_.size(); }

  private:
    struct Rank {
        int32_t rank, merged;
    };
    const Rank* find(int32_t a, int32_t b) const {
        auto it = ranks_.find(uint64_t(uint32_t(a)) << 32 | uint32_t(b));
        return it == ranks_.end() ? nullptr : &it->second;
    }
    void merge_short(std::vector<int32_t>& syms) const;
    void merge_long(std::vector<int32_t>& syms) const;

    std::array<int32_t, 256> byte_ids_;
    std::unordered_map<uint64_t, Rank> ranks_;
    std::vector<std::string> token_bytes_;
    struct Cache;
    std::unique_ptr<Cache> cache_;
};

}  // namespace t6::text
