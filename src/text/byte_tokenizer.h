// The byte-level tokenizer: token id = byte value (vocabulary 256, no end-of-text token). What
// the README demo trains on before any vocabulary is learned; spec {"kind": "bytes"}.
#pragma once
#include <memory>

#include "text/tokenizer.h"

namespace t6 {

std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace t6
