// UTF-8 decoding for the tokenizers: strict (no overlong forms, no surrogates, nothing above
// U+10FFFF). Invalid bytes are reported one at a time so byte-level tokenizers can still encode
// them (each invalid byte becomes its own "character").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace t6::text {

// Decodes the code point starting at s[i]. Returns its length in bytes (1..4) and sets cp; on an
// invalid or truncated sequence returns 1 and sets cp = -1 (the byte s[i] is invalid).
inline int utf8_next(std::string_view s, size_t i, int32_t& cp) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
    const size_t left = s.size() - i;
    const unsigned c = p[0];
    if (c < 0x80) {
        cp = int32_t(c);
        return 1;
    }
    cp = -1;
    auto cont = [&](size_t k) { return k < left && (p[k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) {
        if (!cont(1)) return 1;
        cp = int32_t(((c & 0x1F) << 6) | (p[1] & 0x3F));
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 1;
        int32_t v = int32_t(((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F));
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 1;
        cp = v;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 1;
        int32_t v = int32_t(((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) |
                            (p[3] & 0x3F));
        if (v < 0x10000 || v > 0x10FFFF) return 1;
        cp = v;
        return 4;
    }
    return 1;
}

// Byte offset of the first invalid UTF-8 byte in s, or npos if s is valid UTF-8.
size_t utf8_first_invalid(std::string_view s);

// Appends the UTF-8 encoding of code point cp (0..0x10FFFF, not a surrogate).
void utf8_append(std::string& out, int32_t cp);

// Number of code points in s (each invalid byte counts as one).
size_t utf8_length(std::string_view s);

// Bytes of s that are not continuation bytes (10xxxxxx): the code points of valid UTF-8, and the
// server's count of characters for text offsets (a stray continuation byte adds none).
inline size_t utf8_lead_bytes(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

}  // namespace t6::text
