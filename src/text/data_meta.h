// The one reader of a data folder's meta.json (written by `t6 prepare`, text/prepare.h): the
// tokenizer that made the data ("tokenizer", a tokenizer spec), the token width of headerless
// files ("dtype"), the vocabulary size and counts. Training, evaluation, conversion, the study and
// the tokenizer resolver all read it through here.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace t6 {

// <dir>/meta.json as a JSON object, or null when there is none. Fails naming the file when it is
// not a regular file, not valid JSON or not an object.
nlohmann::json read_data_meta(const std::string& dir);

}  // namespace t6
