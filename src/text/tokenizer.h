// Tokenizers: text <-> token ids. Three kinds, one interface:
//   gpt2  GPT-2's byte-level BPE (50257 ids, <|endoftext|> = 50256), vocabulary files from
//         tools/fetch-gpt2-vocab.sh (see gpt2_vocab_dir()).
//   bpe   a byte-level BPE trained by `t6 tokenizer train` (file format: bpe_tokenizer.cpp).
//   char  nanoGPT's shakespeare_char: one id per character of a fixed sorted character set.
// A tokenizer is described by a JSON "spec" that is stored with the data it made (meta.json's
// "tokenizer") and in checkpoints (metadata key "tokenizer"), so users name it once, at
// `t6 prepare`, and every later command finds it.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace t6 {

inline constexpr const char* kEndOfText = "<|endoftext|>";

class Tokenizer {
  public:
    virtual ~Tokenizer() = default;

    virtual std::string kind() const = 0;  // "gpt2", "bpe" or "char"
    virtual int vocab_size() const = 0;
    // The document separator id (<|endoftext|>), or -1 if the vocabulary has none (char).
    virtual int eot() const = 0;

    // Appends the ids of `text`. Special-token text such as "<|endoftext|>" is encoded as
    // ordinary text (like tiktoken's encode_ordinary). Thread-safe.
    virtual void encode(std::string_view text, std::vector<int32_t>& out) const = 0;
    std::vector<int32_t> encode(std::string_view text) const;
    // Same, but each literal "<|endoftext|>" becomes the eot id (when there is one).
    std::vector<int32_t> encode_with_special(std::string_view text) const;

    // The bytes of one token (a BPE token may hold part of a UTF-8 character; concatenating the
    // pieces of a sequence gives its text). Fails on an id outside the vocabulary.
    virtual std::string token_bytes(int32_t id) const = 0;
    std::string decode(const int32_t* ids, size_t n) const;
    std::string decode(const std::vector<int32_t>& ids) const {
        return decode(ids.data(), ids.size());
    }

    // The JSON that load_tokenizer_spec() turns back into this tokenizer (self-contained: bpe and
    // char embed their whole vocabulary).
    virtual nlohmann::json spec() const = 0;
};

// "gpt2", or the path of a tokenizer file written by `t6 tokenizer train` (bpe or char).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& name_or_path);
// A spec as returned by Tokenizer::spec() (`where` names its origin in errors).
std::unique_ptr<Tokenizer> load_tokenizer_spec(const nlohmann::json& spec,
                                               const std::string& where);
// The tokenizer recorded in <dir>/meta.json (written by `t6 prepare`).
std::unique_ptr<Tokenizer> load_tokenizer_from_meta(const std::string& dir);

// GPT-2 tokenizer from the vocabulary folder (files checked against pinned SHA-256 sums).
std::unique_ptr<Tokenizer> make_gpt2_tokenizer();
std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& vocab_dir);
// $T6_GPT2_VOCAB_DIR, else ${T6_CACHE:-${XDG_CACHE_HOME:-~/.cache}/t6}/gpt2.
std::string gpt2_vocab_dir();
bool gpt2_vocab_available();

}  // namespace t6
