// tokenizer.json pre-tokenizers and normalizers (text/hf_tokenizer.h) on hand-checked pieces:
// the Llama-3 and Qwen2 Split patterns, Digits(individual_digits) before ByteLevel, Metaspace
// with split, byte fallback and added tokens; the spec round trip through load_tokenizer_spec.
// (Whole-tokenizer ids against a BPE in Python: test_cli_hf_import.cpp.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/byte_unicode.h"
#include "text/hf_tokenizer.h"

using namespace t6;
using nlohmann::json;

namespace {

const std::string kSp = "\xe2\x96\x81";  // ▁

// A byte-level tokenizer whose vocabulary holds the 256 bytes and `pieces` (ignore_merges: a
// piece in the vocabulary is one id), so encode() shows the pre-tokenizer's pieces.
json byte_level(const json& pre, const std::vector<std::string>& pieces) {
    json vocab = json::object();
    for (int b = 0; b < 256; b++) vocab[text::map_bytes(std::string(1, char(b)))] = b;
    int next = 256;
    for (const auto& p : pieces)
        if (!vocab.contains(text::map_bytes(p))) vocab[text::map_bytes(p)] = next++;
    return {
        {"pre_tokenizer", pre},
        {"added_tokens", json::array({{{"id", 400}, {"content", "<|eot|>"}, {"special", true}}})},
        {"model",
         {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"ignore_merges", true}}}};
}

// The pieces encode() produced: each id's bytes (pieces in the vocabulary are one id each).
std::vector<std::string> pieces_of(const Tokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    for (int32_t id : t.encode(text)) out.push_back(t.token_bytes(id));
    return out;
}

json split(const std::string& digits) {
    const std::string re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" +
                           digits +
                           "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

}  // namespace

TEST(HfTokenizerPieces, Llama3AndQwen2Patterns) {
    const std::string text = "I'm 12345 cats\n\n  ok";
    const std::vector<std::string> common = {"I", "'m", " ", " cats", "\n\n", " ", " ok"};
    auto l3 =
        make_hf_tokenizer(hf_tokenizer_spec(byte_level(split("{1,3}"), common), -1, "l3"), "l3");
    EXPECT_EQ(pieces_of(*l3, text), (std::vector<std::string>{"I", "'m", " ", "1", "2", "3", "4",
                                                              "5", " cats", "\n\n", " ", " ok"}));
    auto l3b = make_hf_tokenizer(
        hf_tokenizer_spec(byte_level(split("{1,3}"), {"123", "45", "I", "'m", " "}), -1, "l3"),
        "l3");
    const auto p = pieces_of(*l3b, "I'm 12345");
    EXPECT_EQ(p, (std::vector<std::string>{"I", "'m", " ", "123", "45"}));
    auto qw = make_hf_tokenizer(
        hf_tokenizer_spec(byte_level(split(""), {"123", "12", "I", "'m", " "}), -1, "qw"), "qw");
    EXPECT_EQ(pieces_of(*qw, "I'm 123"), (std::vector<std::string>{"I", "'m", " ", "1", "2", "3"}));
}

TEST(HfTokenizerPieces, DigitsThenByteLevel) {
    const json pre = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
    auto t =
        make_hf_tokenizer(hf_tokenizer_spec(byte_level(pre, {"ab", " 7", "7"}), 400, "d"), "d");
    // GPT-2's pattern alone would keep " 77" together; Digits isolates each digit first.
    EXPECT_EQ(pieces_of(*t, "ab 77"), (std::vector<std::string>{"ab", " ", "7", "7"}));
    EXPECT_EQ(t->eot(), 400);
    EXPECT_EQ(t->token_bytes(400), "<|eot|>");
    // The spec is what checkpoints store: it makes the same tokenizer again.
    auto again = load_tokenizer_spec(t->spec(), "spec");
    EXPECT_EQ(again->encode("ab 77 x"), t->encode("ab 77 x"));
    EXPECT_EQ(again->eot(), 400);
}

TEST(HfTokenizerPieces, MetaspaceSplitAndByteFallback) {
    json vocab = {{"<unk>", 0}};
    for (int b = 0; b < 256; b++) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = int(vocab.size());
    }
    for (const std::string& s : std::vector<std::string>{kSp + "hi", kSp + "h", kSp + "y",
                                                         kSp + "you", kSp, "h", "i", "y", "o", "u"})
        vocab[s] = int(vocab.size());
    const json tj = {{"pre_tokenizer",
                      {{"type", "Metaspace"},
                       {"replacement", kSp},
                       {"prepend_scheme", "first"},
                       {"split", true}}},
                     {"model",
                      {{"type", "BPE"},
                       {"vocab", vocab},
                       {"merges", json::array({kSp + " h", kSp + "h i", kSp + " y"})},
                       {"byte_fallback", true},
                       {"unk_token", "<unk>"}}}};
    auto t = make_hf_tokenizer(hf_tokenizer_spec(tj, -1, "sp"), "sp");
    // "▁hi" merges; "▁you" does not ("▁y o" is no merge); "é" falls back to its two bytes.
    EXPECT_EQ(pieces_of(*t, "hi you é"),
              (std::vector<std::string>{" hi", " y", "o", "u", " ", "\xc3", "\xa9"}));
    EXPECT_EQ(t->decode(t->encode("hi you é")), " hi you é");
}

TEST(HfTokenizerPieces, UnsupportedIsAnError) {
    json tj = byte_level({{"type", "Whitespace"}}, {});
    EXPECT_THROW(hf_tokenizer_spec(tj, -1, "w"), Error);
    tj = byte_level({{"type", "ByteLevel"}}, {});
    tj["model"]["merges"] = json::array({"a zz"});
    EXPECT_THROW(hf_tokenizer_spec(tj, -1, "m"), Error);  // merge of tokens not in the vocab
    tj = byte_level({{"type", "ByteLevel"}}, {});
    EXPECT_THROW(hf_tokenizer_spec(tj, 5000, "e"), Error);  // eos outside the vocabulary
}
