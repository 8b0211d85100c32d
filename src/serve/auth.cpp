#include "serve/auth.h"

#include <cctype>

namespace t6::serve {

bool constant_time_equal(std::string_view a, std::string_view b) {
    // Walks all of `a` (the client's bytes) against `b` cyclically, so neither the position of
    // the first difference nor the contents of `b` change the time taken.
    volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
    if (b.empty()) return a.empty();
    for (size_t i = 0; i < a.size(); i++)
        diff = diff | static_cast<unsigned char>(a[i] ^ b[i % b.size()]);
    return diff == 0;
}

bool bearer_matches(std::string_view authorization, std::string_view key) {
    // RFC 7235: the scheme name is case-insensitive ("Bearer", "bearer", "BEARER"), and one or
    // more spaces separate it from the credentials.
    constexpr std::string_view kBearer = "bearer";
    if (authorization.size() <= kBearer.size()) return false;
    for (size_t i = 0; i < kBearer.size(); i++)
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != kBearer[i]) return false;
    size_t at = kBearer.size();
    if (authorization[at] != ' ') return false;
    while (at < authorization.size() && authorization[at] == ' ') at++;
    return constant_time_equal(authorization.substr(at), key);
}

}  // namespace t6::serve
