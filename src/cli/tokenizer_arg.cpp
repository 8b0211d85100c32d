#include "cli/tokenizer_arg.h"

#include "core/error.h"
#include "model/checkpoint.h"
#include "text/byte_tokenizer.h"

namespace t6::cli {

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& option,
                                             const std::string& checkpoint, int vocab_size) {
    std::unique_ptr<Tokenizer> tok;
    if (!option.empty()) {
        tok = load_tokenizer(option);
    } else if (!checkpoint.empty()) {
        auto meta = checkpoint_metadata(checkpoint);
        auto it = meta.find("tokenizer");
        if (it != meta.end()) {
            nlohmann::json spec;
            try {
                spec = nlohmann::json::parse(it->second);
            } catch (const nlohmann::json::parse_error&) {
                fail(checkpoint, ": the 'tokenizer' metadata is not valid JSON");
            }
            tok = load_tokenizer_spec(spec, checkpoint + " (tokenizer metadata)");
        }
    }
    if (!tok) {
        if (vocab_size == 256)
            tok = make_byte_tokenizer();
        else if (vocab_size >= 50257 && vocab_size <= 50304)
            tok = make_gpt2_tokenizer();
        else
            fail("no tokenizer recorded for this model (vocabulary ", vocab_size,
                 "): pass --tokenizer gpt2|bytes|FILE");
    }
    if (tok->vocab_size() > vocab_size)
        fail("tokenizer '", tok->kind(), "' has ", tok->vocab_size(),
             " ids but the model's vocabulary has ", vocab_size);
    return tok;
}

}  // namespace t6::cli
