// GPT-2's reversible byte <-> printable character mapping (bytes_to_unicode in the official
// encoder): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100..U+0143 in
// byte order. Vocabulary files store token bytes as UTF-8 strings of these characters.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace t6::text {

int32_t byte_to_unicode(unsigned char b);
// The byte of a mapped character, or -1 if cp is not one.
int unicode_to_byte(int32_t cp);

// Token bytes <-> their mapped UTF-8 string. unmap returns false on a character that is not a
// mapped byte.
std::string map_bytes(std::string_view bytes);
bool unmap_bytes(std::string_view mapped, std::string& bytes);

}  // namespace t6::text
