#include "text/byte_tokenizer.h"

#include "core/error.h"

namespace t6 {

namespace {

class ByteTokenizer : public Tokenizer {
  public:
    std::string kind() const override { return "bytes"; }
    int vocab_size() const override { return 256; }
    int eot() const override { return -1; }
    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        for (unsigned char ch : text) out.push_back(int32_t(ch));
    }
    std::string token_bytes(int32_t id) const override {
        if (id < 0 || id > 255) fail("token id ", id, " is not a byte (0..255)");
        return std::string(1, char(id));
    }
    nlohmann::json spec() const override { return {{"kind", "bytes"}}; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() {
    return std::make_unique<ByteTokenizer>();
}

}  // namespace t6
