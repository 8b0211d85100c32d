#include "text/tokenizer.h"

#include "text/byte_tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_util.h"
#include "text/tokenizer_impl.h"

namespace t6 {

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    std::vector<int32_t> out;
    encode(text, out);
    return out;
}

std::vector<int32_t> Tokenizer::encode_with_special(std::string_view text) const {
    std::vector<int32_t> out;
    const std::string_view sep = kEndOfText;
    if (eot() < 0) {
        encode(text, out);
        return out;
    }
    size_t pos = 0;
    while (true) {
        size_t hit = text.find(sep, pos);
        encode(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos),
               out);
        if (hit == std::string_view::npos) break;
        out.push_back(eot());
        pos = hit + sep.size();
    }
    return out;
}

std::string Tokenizer::decode(const int32_t* ids, size_t n) const {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += token_bytes(ids[i]);
    return out;
}

std::unique_ptr<Tokenizer> load_tokenizer_spec(const nlohmann::json& spec,
                                               const std::string& where) {
    if (spec.is_string()) return load_tokenizer(spec.get<std::string>());
    if (!spec.is_object()) fail(where, ": a tokenizer spec must be a JSON object or a name");
    std::string format = spec.value("format", "");
    if (format == "t6-bpe") return text::make_bpe_tokenizer(spec, where);
    if (format == "t6-char") return text::make_char_tokenizer(spec, where);
    std::string kind = spec.value("kind", "");
    if (format.empty() && kind == "gpt2") return make_gpt2_tokenizer();
    if (format.empty() && kind == "bytes") return make_byte_tokenizer();
    fail(where, ": unknown tokenizer (format '", format, "', kind '", kind,
         "'); expected kind gpt2 or bytes, or format t6-bpe / t6-char");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& name_or_path) {
    if (name_or_path == "gpt2") return make_gpt2_tokenizer();
    if (name_or_path == "bytes") return make_byte_tokenizer();
    if (!file_exists(name_or_path))
        fail("tokenizer '", name_or_path,
             "' is neither 'gpt2', 'bytes' nor a tokenizer file (made by t6 tokenizer train)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file_text(name_or_path));
    } catch (const nlohmann::json::exception& e) {
        fail(name_or_path, ": not a JSON tokenizer file (", e.what(), ")");
    }
    return load_tokenizer_spec(j, name_or_path);
}

std::unique_ptr<Tokenizer> load_tokenizer_from_meta(const std::string& dir) {
    std::string path = (std::filesystem::path(dir) / "meta.json").string();
    if (!file_exists(path)) fail(dir, ": no meta.json (prepare the data with t6 prepare)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file_text(path));
    } catch (const nlohmann::json::exception& e) {
        fail(path, ": not valid JSON (", e.what(), ")");
    }
    if (!j.contains("tokenizer")) fail(path, ": no 'tokenizer' key");
    return load_tokenizer_spec(j["tokenizer"], path + " (tokenizer)");
}

}  // namespace t6
