// The one place that decides which tokenizer a command uses, from what it was given, in this
// order: the user's name (--tokenizer gpt2|bytes|FILE) > the checkpoint's "tokenizer" metadata >
// the data folder's meta.json "tokenizer" (t6 prepare) > a default from the model's vocabulary
// size (256: bytes; 50257..50304: gpt2; no model: gpt2). Every command that needs a tokenizer
// (generate, serve, eval, convert, tokenize, tokenizer info) goes through resolve_tokenizer; the
// CLI only reads the checkpoint's metadata for it (cli/tokenizer_arg.h).
#pragma once
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace t6 {

struct TokenizerSources {
    std::string name;             // given by the user; empty: not given
    std::string checkpoint;       // a checkpoint path (for errors); empty: none
    std::string checkpoint_spec;  // its "tokenizer" metadata (JSON text); empty: none recorded
    std::string data_dir;         // a `t6 prepare` folder; empty: none
    int vocab_size = 0;           // the model's vocabulary; 0: no model
    // The checkpoint or data folder was named by the user as the source (t6 tokenize
    // --checkpoint/--data): one that records no tokenizer is an error, not a fall-through.
    bool sources_required = false;
};

// A one-line error names the source that is broken, or what to pass when none decides; also when
// the tokenizer has more ids than the model's vocabulary.
std::unique_ptr<Tokenizer> resolve_tokenizer(const TokenizerSources& s);

}  // namespace t6
