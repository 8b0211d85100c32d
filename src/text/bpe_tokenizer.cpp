// A byte-level BPE tokenizer trained by `t6 tokenizer train` (format "t6-bpe", version 1):
//   {"format": "t6-bpe", "version": 1, "pretokenizer": "gpt2", "vocab_size": V, "eot": V-1,
//    "merges": ["Ġ t", "h e", ...]}
// Ids 0..255 are the single bytes (id = byte value), id 256+r is the token made by merges[r]
// (rank r; its two parts separated by one space, each written in GPT-2's byte-to-character
// mapping so the file is printable JSON), and the last id, V-1 = 256+len(merges), is
// <|endoftext|>. Text is pre-tokenized with the GPT-2 pattern before merging.
#include <unordered_map>

#include "core/error.h"
#include "text/bpe.h"
#include "text/byte_unicode.h"
#include "text/tokenizer_impl.h"

namespace t6::text {

namespace {

class BpeTokenizer : public Tokenizer {
  public:
    BpeTokenizer(std::unique_ptr<BytePairEncoder> bpe, nlohmann::json spec, int vocab, int eot)
        : bpe_(std::move(bpe)), spec_(std::move(spec)), vocab_(vocab), eot_(eot) {}
    std::string kind() const override { return "bpe"; }
    int vocab_size() const override { return vocab_; }
    int eot() const override { return eot_; }
    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        bpe_->encode_text(text, out);
    }
    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id >= vocab_)
            fail("token id ", id, " is outside the vocabulary (0..", vocab_ - 1, ")");
        if (id == eot_) return kEndOfText;
        return bpe_->token_bytes(id);
    }
    nlohmann::json spec() const override { return spec_; }

  private:
    std::unique_ptr<BytePairEncoder> bpe_;
    nlohmann::json spec_;
    int vocab_, eot_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const nlohmann::json& spec,
                                              const std::string& where) {
    if (!spec.contains("version") || !spec["version"].is_number_integer() || spec["version"] != 1)
        fail(where, ": t6-bpe version must be 1 (this t6 reads version 1)");
    if (spec.value("pretokenizer", "gpt2") != "gpt2")
        fail(where, ": pretokenizer '", spec.value("pretokenizer", ""), "' is not 'gpt2'");
    if (!spec.contains("merges") || !spec["merges"].is_array())
        fail(where, ": 'merges' must be a list of strings");
    std::vector<std::string> token_bytes;
    std::array<int32_t, 256> byte_ids{};
    std::unordered_map<std::string, int32_t> ids;
    for (int b = 0; b < 256; ++b) {
        byte_ids[size_t(b)] = b;
        token_bytes.emplace_back(1, char(b));
        ids[token_bytes.back()] = b;
    }
    std::vector<BpeMerge> merges;
    const auto& list = spec["merges"];
    for (size_t r = 0; r < list.size(); ++r) {
        const auto& m = list[r];
        std::string s = m.is_string() ? m.get<std::string>() : std::string();
        size_t sp = s.find(' ');
        std::string a, b;
        if (sp == std::string::npos || !unmap_bytes(s.substr(0, sp), a) ||
            !unmap_bytes(s.substr(sp + 1), b) || a.empty() || b.empty())
            fail(where, ": merges[", r, "] is not two mapped-byte tokens separated by a space");
        auto ia = ids.find(a), ib = ids.find(b);
        if (ia == ids.end() || ib == ids.end())
            fail(where, ": merges[", r, "] uses a token that no earlier merge made");
        // Each merge makes a new token (id 256 + r): a second merge making the same bytes (a
        // duplicated line) would give one token two ids.
        if (auto dup = ids.find(a + b); dup != ids.end())
            fail(where, ": merges[", r, "] '", s, "' makes the token that merges[",
                 dup->second - 256, "] already made (a duplicated merge)");
        int32_t id = int32_t(256 + r);
        merges.push_back({ia->second, ib->second, id});
        token_bytes.push_back(a + b);
        ids.emplace(a + b, id);
    }
    const int vocab = int(257 + merges.size());
    if (spec.contains("vocab_size") && spec["vocab_size"] != vocab)
        fail(where, ": vocab_size ", spec["vocab_size"].dump(),
             " is not 257 + number of merges = ", vocab);
    token_bytes.emplace_back(kEndOfText);
    auto bpe = std::make_unique<BytePairEncoder>(byte_ids, merges, std::move(token_bytes));
    return std::make_unique<BpeTokenizer>(std::move(bpe), spec, vocab, vocab - 1);
}

}  // namespace t6::text
