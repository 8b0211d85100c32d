#include "text/utf8.h"

namespace t6::text {

size_t utf8_first_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // Fast path over ASCII, 8 bytes at a time.
        while (i + 8 <= s.size()) {
            uint64_t w;
            __builtin_memcpy(&w, s.data() + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= s.size()) break;
        int32_t cp;
        int n = utf8_next(s, i, cp);
        if (cp < 0) return i;
        i += size_t(n);
    }
    return std::string_view::npos;
}

void utf8_append(std::string& out, int32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

size_t utf8_length(std::string_view s) {
    size_t i = 0, n = 0;
    while (i < s.size()) {
        int32_t cp;
        i += size_t(utf8_next(s, i, cp));
        ++n;
    }
    return n;
}

}  // namespace t6::text
