#include "serve/text_stream.h"

#include <algorithm>

#include "text/utf8.h"

namespace t6::serve {

namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Bytes a sequence starting with lead byte c needs (0: c cannot start one).
int sequence_length(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

// s[i..] is shorter than the sequence its lead byte starts and every byte so far continues it:
// more bytes may still complete it.
bool may_complete(std::string_view s, size_t i) {
    const int need = sequence_length(static_cast<unsigned char>(s[i]));
    if (need <= 1 || s.size() - i >= size_t(need)) return false;
    for (size_t k = i + 1; k < s.size(); k++)
        if ((static_cast<unsigned char>(s[k]) & 0xC0) != 0x80) return false;
    return true;
}

}  // namespace

std::string Utf8Sanitizer::push(std::string_view bytes) {
    pending_.append(bytes);
    return drain(false);
}

std::string Utf8Sanitizer::flush() {
    return drain(true);
}

std::string Utf8Sanitizer::drain(bool final) {
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        if (!final && may_complete(pending_, i)) break;
        int32_t cp = 0;
        const int n = text::utf8_next(pending_, i, cp);
        if (cp < 0)
            out += kReplacement;
        else
            out.append(pending_, i, size_t(n));
        i += size_t(n);
    }
    pending_.erase(0, i);
    return out;
}

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
    stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

std::string TextStream::push(std::string_view token_bytes) {
    if (stopped_) return {};
    return release(utf8_.push(token_bytes), false);
}

std::string TextStream::finish() {
    if (stopped_) return {};
    return release(utf8_.flush(), true);
}

std::string TextStream::release(std::string text, bool final) {
    held_ += text;
    // The earliest stop sequence ends the text.
    size_t first = std::string::npos;
    for (const auto& s : stop_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        stopped_ = true;
        std::string out = held_.substr(0, first);
        held_.clear();
        return out;
    }
    // Hold back the longest tail that begins some stop sequence.
    size_t keep = 0;
    if (!final)
        for (const auto& s : stop_)
            for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; k--)
                if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                    keep = k;
                    break;
                }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

}  // namespace t6::serve
