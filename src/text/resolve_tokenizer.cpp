#include "text/resolve_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/byte_tokenizer.h"
#include "text/data_meta.h"

namespace t6 {

namespace {

std::unique_ptr<Tokenizer> from_checkpoint(const TokenizerSources& s) {
    if (s.checkpoint_spec.empty()) {
        if (s.sources_required) fail(s.checkpoint, ": the checkpoint records no tokenizer");
        return nullptr;
    }
    nlohmann::json spec;
    try {
        spec = nlohmann::json::parse(s.checkpoint_spec);
    } catch (const nlohmann::json::exception&) {
        fail(s.checkpoint, ": the 'tokenizer' metadata is not valid JSON");
    }
    return load_tokenizer_spec(spec, s.checkpoint + " (tokenizer metadata)");
}

std::unique_ptr<Tokenizer> from_data(const TokenizerSources& s) {
    if (s.sources_required) return load_tokenizer_from_meta(s.data_dir);  // errors if missing
    const nlohmann::json meta = read_data_meta(s.data_dir);
    if (!meta.is_object() || !meta.contains("tokenizer")) return nullptr;
    return load_tokenizer_spec(meta["tokenizer"], s.data_dir + "/meta.json (tokenizer)");
}

std::unique_ptr<Tokenizer> from_vocab_size(int vocab_size) {
    if (vocab_size == 0 || (vocab_size >= 50257 && vocab_size <= 50304))
        return make_gpt2_tokenizer();
    if (vocab_size == 256) return make_byte_tokenizer();
    fail("no tokenizer recorded for this model (vocabulary ", vocab_size,
         "): pass --tokenizer gpt2|bytes|FILE");
}

}  // namespace

std::unique_ptr<Tokenizer> resolve_tokenizer(const TokenizerSources& s) {
    std::unique_ptr<Tokenizer> tok;
    if (!s.name.empty()) tok = load_tokenizer(s.name);
    if (!tok && !s.checkpoint.empty()) tok = from_checkpoint(s);
    if (!tok && !s.data_dir.empty()) tok = from_data(s);
    if (!tok) tok = from_vocab_size(s.vocab_size);
    if (s.vocab_size > 0 && tok->vocab_size() > s.vocab_size)
        fail("tokenizer '", tok->kind(), "' has ", tok->vocab_size(),
             " ids but the model's vocabulary has ", s.vocab_size);
    return tok;
}

}  // namespace t6
