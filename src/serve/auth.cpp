#include "serve/auth.h"

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
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.substr(0, kBearer.size()) != kBearer) return false;
    return constant_time_equal(authorization.substr(kBearer.size()), key);
}

}  // namespace t6::serve
