// The GPT-2 pre-tokenizer: splits text into the pieces that byte-level BPE encodes one by one,
// exactly as the regular expression of the official GPT-2 encoder (Python `regex` semantics)
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// hand-coded over UTF-8 code points: \p{L} = Unicode general categories L*, \p{N} = N*, \s =
// the Unicode White_Space property (classes from ICU). A byte that is not valid UTF-8 is taken as
// one character of its own that is neither letter, number nor space, so any byte string has a
// split and byte-level BPE round-trips it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace t6::text {

enum class CharClass : uint8_t { letter, number, space, other };

// The class of a code point (cp < 0: an invalid byte, class other).
CharClass char_class(int32_t cp);

// Appends the end offsets of the pieces of `text` to `ends` (the first piece starts at 0, piece
// k spans [ends[k-1], ends[k])).
void pretokenize(std::string_view text, std::vector<uint32_t>& ends);

}  // namespace t6::text
