#include "cli/format.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace t6::cli {

std::string with_commas(long long v) {
    std::string digits = std::to_string(v < 0 ? -v : v), out;
    int n = 0;
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
        if (n && n % 3 == 0) out.insert(out.begin(), ',');
        out.insert(out.begin(), *it);
        n++;
    }
    return v < 0 ? "-" + out : out;
}

std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
    return buf;
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

double parse_bytes(const std::string& s, const std::string& what) {
    size_t i = 0;
    double v = 0;
    try {
        v = std::stod(s, &i);
    } catch (...) {
        fail(what, " '", s, "' is not a size (e.g. 2GiB, 512MiB, 1e9)");
    }
    std::string unit = s.substr(i);
    double mult = 1;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "KiB" || unit == "K")
        mult = 1024.0;
    else if (unit == "MiB" || unit == "M")
        mult = 1024.0 * 1024;
    else if (unit == "GiB" || unit == "G")
        mult = 1024.0 * 1024 * 1024;
    else if (unit == "TiB" || unit == "T")
        mult = 1024.0 * 1024 * 1024 * 1024;
    else if (unit == "KB")
        mult = 1e3;
    else if (unit == "MB")
        mult = 1e6;
    else if (unit == "GB")
        mult = 1e9;
    else
        fail(what, " '", s, "': unknown unit '", unit, "' (B, KiB, MiB, GiB, TiB, KB, MB, GB)");
    if (!(v > 0)) fail(what, " '", s, "' must be positive");
    return v * mult;
}

}  // namespace t6::cli
