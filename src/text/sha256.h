// SHA-256 (FIPS 180-4), for checking vocabulary files against pinned hashes.
#pragma once
#include <cstddef>
#include <string>

namespace t6::text {

// Lower-case hex digest of n bytes.
std::string sha256_hex(const void* data, size_t n);

}  // namespace t6::text
