// Training tokenizers on a user's corpus (`t6 tokenizer train`):
//  - byte-level BPE with the GPT-2 pre-tokenizer: count the pre-tokens of the corpus, then
//    repeatedly merge the most frequent adjacent pair (ties: the smaller pair of ids) until the
//    vocabulary has vocab_size ids (256 bytes + merges + <|endoftext|>) or no pair occurs twice.
//    Result: a "t6-bpe" spec (see bpe_tokenizer.cpp for the format).
//  - nanoGPT's char-level vocabulary: the sorted set of characters. Result: a "t6-char" spec.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

namespace t6::text {

class BpeTrainer {
  public:
    // Counts the pre-tokens of one text (call once per document or piece).
    void add_text(std::string_view text);
    // Learns the merges; `log` (if set) receives progress lines.
    nlohmann::json train(int vocab_size, bool progress) const;
    size_t distinct_pieces() const { return counts_.size(); }

  private:
    std::unordered_map<std::string, int64_t> counts_;
};

class CharVocabBuilder {
  public:
    void add_text(std::string_view text);  // valid UTF-8
    nlohmann::json spec() const;

  private:
    std::vector<bool> seen_ = std::vector<bool>(0x110000, false);
};

}  // namespace t6::text
