// How commands find the tokenizer of a model: --tokenizer NAME (gpt2, bytes, or a tokenizer
// file), else the checkpoint's "tokenizer" metadata, else the data folder's meta.json, else a
// guess from the vocabulary size (256: bytes; 50257..50304: gpt2).
#pragma once
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace t6::cli {

std::unique_ptr<Tokenizer> resolve_tokenizer(const std::string& option,
                                             const std::string& checkpoint, int vocab_size);

}  // namespace t6::cli
