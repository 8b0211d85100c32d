#include "text/byte_unicode.h"

#include <array>

#include "text/utf8.h"

namespace t6::text {

namespace {

struct Tables {
    std::array<int32_t, 256> to_cp{};
    std::array<int16_t, 324> to_byte{};
    Tables() {
        to_byte.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cp[size_t(b)] = printable ? b : 256 + n++;
            to_byte[size_t(to_cp[size_t(b)])] = int16_t(b);
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

}  // namespace

int32_t byte_to_unicode(unsigned char b) {
    return tables().to_cp[b];
}

int unicode_to_byte(int32_t cp) {
    if (cp < 0 || cp >= 324) return -1;
    return tables().to_byte[size_t(cp)];
}

std::string map_bytes(std::string_view bytes) {
    std::string out;
    for (char c : bytes) utf8_append(out, byte_to_unicode(static_cast<unsigned char>(c)));
    return out;
}

bool unmap_bytes(std::string_view mapped, std::string& bytes) {
    bytes.clear();
    for (size_t i = 0; i < mapped.size();) {
        int32_t cp;
        i += size_t(utf8_next(mapped, i, cp));
        int b = unicode_to_byte(cp);
        if (b < 0) return false;
        bytes += char(b);
    }
    return true;
}

}  // namespace t6::text
