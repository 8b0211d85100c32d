// nanoGPT's character-level tokenizer (shakespeare_char): the vocabulary is the sorted set of
// characters (code points) of the corpus; id = position in that list. Format "t6-char", v1:
//   {"format": "t6-char", "version": 1, "vocab_size": V, "chars": "\n !$&',-.3:;?AB..."}
// It has no <|endoftext|> (eot() = -1); encoding a character outside the set is an error.
#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace t6::text {

namespace {

std::string char_name(int32_t cp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", unsigned(cp));
    std::string s = buf;
    if (cp >= 0x20 && cp != 0x7F) {
        s += " '";
        utf8_append(s, cp);
        s += "'";
    }
    return s;
}

class CharTokenizer : public Tokenizer {
  public:
    CharTokenizer(std::vector<int32_t> chars, nlohmann::json spec)
        : chars_(std::move(chars)), spec_(std::move(spec)) {
        ascii_.fill(-1);
        for (size_t i = 0; i < chars_.size(); ++i) {
            if (chars_[i] < 128)
                ascii_[size_t(chars_[i])] = int32_t(i);
            else
                other_[chars_[i]] = int32_t(i);
        }
    }
    std::string kind() const override { return "char"; }
    int vocab_size() const override { return int(chars_.size()); }
    int eot() const override { return -1; }
    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        for (size_t i = 0; i < text.size();) {
            int32_t cp;
            int n = utf8_next(text, i, cp);
            if (cp < 0) fail("invalid UTF-8 at byte ", i, " (the char tokenizer needs UTF-8 text)");
            int32_t id = -1;
            if (cp < 128) {
                id = ascii_[size_t(cp)];
            } else if (auto it = other_.find(cp); it != other_.end()) {
                id = it->second;
            }
            if (id < 0)
                fail("character ", char_name(cp), " is not in the char tokenizer's vocabulary (",
                     chars_.size(), " characters)");
            out.push_back(id);
            i += size_t(n);
        }
    }
    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id >= int32_t(chars_.size()))
            fail("token id ", id, " is outside the vocabulary (0..", chars_.size() - 1, ")");
        std::string s;
        utf8_append(s, chars_[size_t(id)]);
        return s;
    }
    nlohmann::json spec() const override { return spec_; }

  private:
    std::vector<int32_t> chars_;
    std::array<int32_t, 128> ascii_;
    std::unordered_map<int32_t, int32_t> other_;
    nlohmann::json spec_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_char_tokenizer(const nlohmann::json& spec,
                                               const std::string& where) {
    if (!spec.contains("version") || !spec["version"].is_number_integer() || spec["version"] != 1)
        fail(where, ": t6-char version must be 1 (this t6 reads version 1)");
    if (!spec.contains("chars") || !spec["chars"].is_string())
        fail(where, ": 'chars' must be a string");
    std::string s = spec["chars"];
    std::vector<int32_t> chars;
    for (size_t i = 0; i < s.size();) {
        int32_t cp;
        i += size_t(utf8_next(s, i, cp));
        chars.push_back(cp);
    }
    if (chars.empty()) fail(where, ": 'chars' is empty");
    for (size_t i = 1; i < chars.size(); ++i)
        if (chars[i] <= chars[i - 1]) fail(where, ": 'chars' must be sorted without repeats");
    if (spec.contains("vocab_size") && spec["vocab_size"] != chars.size())
        fail(where, ": vocab_size ", spec["vocab_size"].dump(), " is not the number of chars (",
             chars.size(), ")");
    return std::make_unique<CharTokenizer>(std::move(chars), spec);
}

}  // namespace t6::text
