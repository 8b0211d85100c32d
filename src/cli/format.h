// Small output helpers for the CLI: thousands separators, fixed-width tables.
#pragma once
#include <cstdint>
#include <string>

namespace t6::cli {

std::string with_commas(long long v);   // 16007168 -> "16,007,168"
std::string human_bytes(double bytes);  // "1.50 KiB", "3.2 GiB"
std::string fixed(double v, int decimals);

}  // namespace t6::cli
