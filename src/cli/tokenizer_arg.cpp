#include "cli/tokenizer_arg.h"

#include "model/checkpoint.h"
#include "text/resolve_tokenizer.h"

namespace t6::cli {

std::string checkpoint_tokenizer_spec(const std::string& checkpoint) {
    const auto meta = checkpoint_metadata(checkpoint);
    const auto it = meta.find("tokenizer");
    return it == meta.end() ? std::string() : it->second;
}

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& option,
                                             const std::string& checkpoint, int vocab_size,
                                             const std::string& data_dir) {
    TokenizerSources s;
    s.name = option;
    if (option.empty() && !checkpoint.empty()) {
        s.checkpoint = checkpoint;
        s.checkpoint_spec = checkpoint_tokenizer_spec(checkpoint);
    }
    s.data_dir = data_dir;
    s.vocab_size = vocab_size;
    return t6::resolve_tokenizer(s);
}

}  // namespace t6::cli
