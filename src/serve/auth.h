// API-key check for `t6 serve`: "Authorization: Bearer KEY", compared in constant time.
#pragma once
#include <string_view>

namespace t6::serve {

// a == b, in time that depends on the lengths only (never on where they first differ).
bool constant_time_equal(std::string_view a, std::string_view b);

// The header's value is "Bearer <key>" with <key> == key.
bool bearer_matches(std::string_view authorization, std::string_view key);

}  // namespace t6::serve
