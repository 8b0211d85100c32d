#include "cli/bench_decode_rounds.h"

#include <cstdio>
#include <string>
#include <vector>

#include "core/timing.h"

namespace t6::cli {

namespace {

// The fields that name a point; results with equal values of all of them are rounds of one point.
const char* const kPointKeys[] = {"simd_target", "model", "weights",        "cache_type",
                                  "context",     "batch", "kv_block_tokens"};
// Fields copied from the point's first result (the same in every round).
const char* const kFixedKeys[] = {"attention", "attention_kernel", "bytes_per_step",
                                  "flops_per_step", "paired_with"};
// The timed quantities: median and per-round values.
const char* const kTimedKeys[] = {"step_ms",
                                  "tokens_per_s",
                                  "roofline_fraction_now",
                                  "roofline_serial_fraction_now",
                                  "roofline_fraction_reachable_now",
                                  "attention_ms",
                                  "attention_fraction_now",
                                  "linear_ms",
                                  "linear_fraction_now",
                                  "bandwidth_now_gb_per_s",
                                  "fma_peak_now_gflops",
                                  "paired_step_ratio",
                                  "paired_step_ratio_bound_now",
                                  "paired_floor_ratio_now"};

bool same_point(const nlohmann::json& a, const nlohmann::json& b) {
    for (const char* k : kPointKeys)
        if (a.value(k, nlohmann::json()) != b.value(k, nlohmann::json())) return false;
    return true;
}

}  // namespace

nlohmann::json decode_round_medians(const nlohmann::json& results) {
    // Points in the order first measured, each with the indices of its results.
    std::vector<std::vector<size_t>> points;
    for (size_t i = 0; i < results.size(); i++) {
        bool found = false;
        for (auto& pt : points)
            if (same_point(results[pt.front()], results[i])) {
                pt.push_back(i);
                found = true;
                break;
            }
        if (!found) points.push_back({i});
    }
    nlohmann::json summary = nlohmann::json::array();
    for (const auto& pt : points) {
        const nlohmann::json& first = results[pt.front()];
        nlohmann::json e = nlohmann::json::object();
        for (const char* k : kPointKeys)
            if (first.contains(k)) e[k] = first[k];
        for (const char* k : kFixedKeys)
            if (first.contains(k)) e[k] = first[k];
        e["rounds"] = pt.size();
        for (const char* k : kTimedKeys) {
            std::vector<double> v;
            for (size_t i : pt)
                if (results[i].contains(k)) v.push_back(results[i][k].get<double>());
            if (v.size() != pt.size()) continue;  // not measured in every round (or at all)
            e[k] = median(v);
            e[std::string(k) + "_rounds"] = v;
        }
        summary.push_back(std::move(e));
    }
    return summary;
}

void print_round_medians(const nlohmann::json& summary, int rounds) {
    std::printf("medians of %d round%s per point (step ms and roof of each round after them):\n",
                rounds, rounds == 1 ? "" : "s");
    std::printf("%-10s %-16s %4s %4s %6s %5s %9s %6s %6s %6s %6s %7s %7s %7s  %s\n", "target",
                "model", "wts", "kv", "ctx", "batch", "step_ms", "roof", "reach", "a_roof",
                "l_roof", "paired", "p_bound", "p_floor", "rounds: step_ms roof");
    // The first preset's step over this one's (paired), and the most it can be (bench decode:
    // paired_step_ratio_bound_now, paired_floor_ratio_now), as speed-ups.
    const auto speedup = [](const nlohmann::json& e, const char* key) {
        if (!e.contains(key)) return std::string("-");
        char b[32];
        std::snprintf(b, sizeof b, "%.2fx", 1.0 / e[key].get<double>());
        return std::string(b);
    };
    for (const auto& e : summary) {
        const std::string paired = speedup(e, "paired_step_ratio");
        const std::string bound = speedup(e, "paired_step_ratio_bound_now");
        const std::string at_floors = speedup(e, "paired_floor_ratio_now");
        std::string each;
        const auto steps = e["step_ms_rounds"].get<std::vector<double>>();
        const auto roofs = e["roofline_fraction_now_rounds"].get<std::vector<double>>();
        for (size_t i = 0; i < steps.size(); i++) {
            char b[48];
            std::snprintf(b, sizeof b, "%s%.2f %.0f%%", i ? ", " : "", steps[i], 100 * roofs[i]);
            each += b;
        }
        std::printf(
            "%-10s %-16s %4s %4s %6ld %5d %9.2f %5.0f%% %5.0f%% %5.0f%% %5.0f%% %7s %7s %7s  %s\n",
            e["simd_target"].get<std::string>().c_str(), e["model"].get<std::string>().c_str(),
            e["weights"].get<std::string>().c_str(), e["cache_type"].get<std::string>().c_str(),
            e["context"].get<long>(), e["batch"].get<int>(), e["step_ms"].get<double>(),
            100 * e["roofline_fraction_now"].get<double>(),
            100 * e["roofline_fraction_reachable_now"].get<double>(),
            100 * e["attention_fraction_now"].get<double>(),
            100 * e["linear_fraction_now"].get<double>(), paired.c_str(), bound.c_str(),
            at_floors.c_str(), each.c_str());
    }
}

}  // namespace t6::cli
