// How commands find the tokenizer of a model: text/resolve_tokenizer.h decides (--tokenizer NAME
// > the checkpoint's "tokenizer" metadata > the data folder's meta.json > a default from the
// vocabulary size); this reads the checkpoint's metadata for it.
#pragma once
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace t6::cli {

// The checkpoint's "tokenizer" metadata (JSON text), "" when it records none.
std::string checkpoint_tokenizer_spec(const std::string& checkpoint);

// option: --tokenizer ("" when not given); checkpoint: the model's checkpoint ("" for a preset or
// config); data_dir: a `t6 prepare` folder the command reads ("" when none).
std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& option,
                                             const std::string& checkpoint, int vocab_size,
                                             const std::string& data_dir = "");

}  // namespace t6::cli
