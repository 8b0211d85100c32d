#include "text/tokenizer.h"

#include "text/byte_tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_util.h"
#include "text/data_meta.h"
#include "text/hf_tokenizer.h"
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
    if (spec.contains("format") && !spec["format"].is_string())
        fail(where, ": 'format' must be a string");
    if (spec.contains("kind") && !spec["kind"].is_string())
        fail(where, ": 'kind' must be a string");
    std::string format = spec.value("format", "");
    std::string kind = spec.value("kind", "");
    std::unique_ptr<Tokenizer> tok;
    if (format == "t6-bpe")
        tok = text::make_bpe_tokenizer(spec, where);
    else if (format == "t6-char")
        tok = text::make_char_tokenizer(spec, where);
    else if (format == "hf-tokenizer")
        tok = make_hf_tokenizer(spec, where);
    else if (format.empty() && kind == "gpt2")
        tok = make_gpt2_tokenizer();
    else if (format.empty() && kind == "bytes")
        tok = make_byte_tokenizer();
    else
        fail(where, ": unknown tokenizer (format '", format, "', kind '", kind,
             "'); expected kind gpt2 or bytes, or format t6-bpe / t6-char / hf-tokenizer");
    // A recorded end-of-text id must be the tokenizer's own (its position is fixed by the
    // format: the last id for t6-bpe, 50256 for gpt2; none for char and bytes).
    if (spec.contains("eot")) {
        const auto& e = spec["eot"];
        const bool none = e.is_null() || (e.is_number_integer() && e.get<long long>() < 0);
        const bool same =
            none ? tok->eot() < 0 : e.is_number_integer() && e.get<long long>() == tok->eot();
        if (!same)
            fail(where, ": eot ", e.dump(), " is not this tokenizer's end-of-text id (",
                 tok->eot() < 0 ? std::string("it has none")
                                : cat(tok->eot(), ", of ids 0..", tok->vocab_size() - 1),
                 ")");
    }
    return tok;
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
    // A Hugging Face tokenizer.json (no end-of-text id: that lives in the model's config.json).
    if (is_hf_tokenizer_json(j))
        return make_hf_tokenizer(hf_tokenizer_spec(j, -1, name_or_path), name_or_path);
    return load_tokenizer_spec(j, name_or_path);
}

std::unique_ptr<Tokenizer> load_tokenizer_from_meta(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / "meta.json").string();
    const nlohmann::json j = read_data_meta(dir);
    if (j.is_null()) fail(dir, ": no meta.json (prepare the data with t6 prepare)");
    if (!j.contains("tokenizer")) fail(path, ": no 'tokenizer' key");
    return load_tokenizer_spec(j["tokenizer"], path + " (tokenizer)");
}

}  // namespace t6
