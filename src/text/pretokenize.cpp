#include "text/pretokenize.h"

#include <unicode/uchar.h>

#include <array>

#include "text/utf8.h"

namespace t6::text {

namespace {

CharClass classify_icu(int32_t cp) {
    if (u_isUWhiteSpace(UChar32(cp))) return CharClass::space;
    switch (u_charType(UChar32(cp))) {
        case U_UPPERCASE_LETTER:
        case U_LOWERCASE_LETTER:
        case U_TITLECASE_LETTER:
        case U_MODIFIER_LETTER:
        case U_OTHER_LETTER:
            return CharClass::letter;
        case U_DECIMAL_DIGIT_NUMBER:
        case U_LETTER_NUMBER:
        case U_OTHER_NUMBER:
            return CharClass::number;
        default:
            return CharClass::other;
    }
}

// Classes of U+0000..U+00FF, computed once (the common case avoids ICU calls).
const std::array<CharClass, 256>& latin1_classes() {
    static const std::array<CharClass, 256> table = [] {
        std::array<CharClass, 256> t{};
        for (int c = 0; c < 256; ++c) t[size_t(c)] = classify_icu(c);
        return t;
    }();
    return table;
}

}  // namespace

CharClass char_class(int32_t cp) {
    if (cp < 0) return CharClass::other;
    if (cp < 256) return latin1_classes()[size_t(cp)];
    return classify_icu(cp);
}

void pretokenize(std::string_view text, std::vector<uint32_t>& ends) {
    // Decode once into per-character arrays: byte offset, class and (ASCII) code point.
    thread_local std::vector<uint32_t> off;
    thread_local std::vector<CharClass> cls;
    thread_local std::vector<int32_t> cps;
    off.clear();
    cls.clear();
    cps.clear();
    const auto& latin1 = latin1_classes();
    for (size_t i = 0; i < text.size();) {
        unsigned char b = static_cast<unsigned char>(text[i]);
        int32_t cp;
        int len = 1;
        if (b < 0x80) {
            cp = b;
        } else {
            len = utf8_next(text, i, cp);
        }
        off.push_back(uint32_t(i));
        cls.push_back(cp >= 0 && cp < 256 ? latin1[size_t(cp)] : char_class(cp));
        cps.push_back(cp);
        i += size_t(len);
    }
    const size_t n = cls.size();
    off.push_back(uint32_t(text.size()));

    size_t i = 0;
    auto emit = [&](size_t end_char) {
        ends.push_back(off[end_char]);
        i = end_char;
    };
    while (i < n) {
        // 's|'t|'re|'ve|'m|'ll|'d
        if (cps[i] == '\'' && i + 1 < n) {
            int32_t a = cps[i + 1];
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                emit(i + 2);
                continue;
            }
            if (i + 2 < n) {
                int32_t b = cps[i + 2];
                if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
                    emit(i + 3);
                    continue;
                }
            }
        }
        // ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': an optional space, then a run of one class.
        size_t k = (cps[i] == ' ' && i + 1 < n && cls[i + 1] != CharClass::space) ? i + 1 : i;
        if (cls[k] != CharClass::space) {
            CharClass c = cls[k];
            size_t j = k + 1;
            while (j < n && cls[j] == c) ++j;
            emit(j);
            continue;
        }
        // '\s+(?!\S)|\s+': a white-space run, leaving its last character to the next piece when
        // a non-space follows (so " word" keeps its space), unless the run is one character.
        size_t j = i + 1;
        while (j < n && cls[j] == CharClass::space) ++j;
        if (j == n || j - 1 == i)
            emit(j);
        else
            emit(j - 1);
    }
}

}  // namespace t6::text
