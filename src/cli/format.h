// Small output helpers for the CLI: thousands separators, fixed-width tables.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/strings.h"
#include "core/timing.h"

namespace t6::cli {

std::string with_commas(long long v);   // 16007168 -> "16,007,168"
std::string human_bytes(double bytes);  // "1.50 KiB", "3.2 GiB"
std::string fixed(double v, int decimals);

// "2GiB", "512MiB", "1e9", "64KB" -> bytes; a one-line error naming `what` otherwise.
double parse_bytes(const std::string& s, const std::string& what);

// split_list (core/strings.h) and median (core/timing.h) are t6's, found from t6::cli.

}  // namespace t6::cli
