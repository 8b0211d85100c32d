// Hugging Face tokenizer.json files of BPE models, in two families (docs/hf-import.md):
//   byte-level  GPT-2 / SmolLM / Qwen style: text split by the ByteLevel pre-tokenizer (GPT-2's
//               pattern; optional Digits(individual_digits) before it, or the Llama-3 / Qwen2
//               Split pattern), each piece's bytes mapped to GPT-2's printable alphabet, BPE.
//   sentencepiece  Llama / TinyLlama style: spaces become "▁", one "▁" is prepended (normalizer
//               Prepend+Replace, or a Metaspace pre-tokenizer), BPE over characters; characters
//               outside the vocabulary fall back to their <0xXX> byte tokens (byte_fallback).
// Merges apply lowest rank first, leftmost first (HF's BPE without dropout). Added tokens decode
// to their content; encoding treats their text as ordinary text (like Tokenizer::encode). A
// tokenizer is stored in checkpoints as the spec {"format": "hf-tokenizer", "eot": ID|null,
// "tokenizer": <tokenizer.json without padding/truncation/post_processor>}.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "text/tokenizer.h"

namespace t6 {

// Checks a parsed tokenizer.json (`where` names it in errors: unknown model type, unsupported
// normalizer or pre-tokenizer, malformed vocabulary or merges) and returns its spec; eos: the
// end-of-text id (config.json's eos_token_id), or -1.
nlohmann::json hf_tokenizer_spec(const nlohmann::json& tokenizer_json, int eos,
                                 const std::string& where);

// The tokenizer of such a spec.
std::unique_ptr<Tokenizer> make_hf_tokenizer(const nlohmann::json& spec, const std::string& where);

// Whether a parsed JSON file is a tokenizer.json (an object with a "model" object).
bool is_hf_tokenizer_json(const nlohmann::json& j);

}  // namespace t6
