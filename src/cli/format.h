// Small output helpers for the CLI: thousands separators, fixed-width tables.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace t6::cli {

std::string with_commas(long long v);   // 16007168 -> "16,007,168"
std::string human_bytes(double bytes);  // "1.50 KiB", "3.2 GiB"
std::string fixed(double v, int decimals);

// "2GiB", "512MiB", "1e9", "64KB" -> bytes; a one-line error naming `what` otherwise.
double parse_bytes(const std::string& s, const std::string& what);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& s);

// Median of timings (mean of the middle two for an even count); v must not be empty.
double median(std::vector<double> v);

// A peer's measured throughput for one benchmark configuration (../shared/baselines.md).
struct PeerFigure {
    const char* preset;
    int batch, seq;
    double tokens_per_s;
};

}  // namespace t6::cli
