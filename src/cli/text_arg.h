// Shared by the text commands (tokenize, tokenizer, prepare): choosing a tokenizer from
// --tokenizer / --data / --checkpoint, and the input options of the document reader.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "text/doc_reader.h"
#include "text/tokenizer.h"

namespace t6::cli {

// --tokenizer gpt2|FILE, --data DIR (its meta.json), --checkpoint PATH (its "tokenizer"
// metadata): one of them, resolved by text/resolve_tokenizer.h.
void add_tokenizer_options(ArgParser& p, bool with_sources);
std::unique_ptr<Tokenizer> tokenizer_from_options(const ArgParser& p, const std::string& command);

// --input-format, --field, --docs.
void add_input_options(ArgParser& p);
text::DocReaderOptions input_options(const ArgParser& p);

// Positional inputs plus --input A,B,C (comma-separated).
std::vector<std::string> input_paths(const ArgParser& p);

}  // namespace t6::cli
