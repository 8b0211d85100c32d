// Internal to src/text: constructors of the tokenizer kinds from their JSON specs.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "text/tokenizer.h"

namespace t6::text {

// A t6-bpe spec ({"format": "t6-bpe", ...}); `where` names its origin in errors.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const nlohmann::json& spec, const std::string& where);
// A t6-char spec ({"format": "t6-char", ...}).
std::unique_ptr<Tokenizer> make_char_tokenizer(const nlohmann::json& spec,
                                               const std::string& where);

}  // namespace t6::text
