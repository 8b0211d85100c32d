#include "cli/simd_targets_arg.h"

#include <algorithm>

#include "core/error.h"
#include "core/strings.h"

namespace t6::cli {

std::vector<SimdTarget> parse_simd_targets_arg(const std::string& s, const std::string& where) {
    const std::vector<SimdTarget> avail = simd_available_targets();
    if (s == "all") return avail;
    std::string avail_names;
    for (SimdTarget t : avail)
        avail_names += std::string(avail_names.empty() ? "" : ", ") + simd_target_name(t);
    const std::vector<std::string> items = split_list(s);
    if (items.empty()) fail(where, " is empty (all, now, or a list of targets)");
    std::vector<SimdTarget> out;
    for (const auto& item : items) {
        const SimdTarget t = item == "now" ? simd_target() : parse_simd_target(item, where);
        if (std::find(avail.begin(), avail.end(), t) == avail.end())
            fail(where, ": '", item, "' does not run on this machine (available: ", avail_names,
                 ")");
        if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    }
    return out;
}

}  // namespace t6::cli
