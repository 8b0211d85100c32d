// The medians over rounds of t6 bench decode --rounds N (and over each of its --targets): the
// shared machine's speed moves by up to a third within minutes, so a figure is the median of
// several rounds of the whole sweep, each round taking every point once, rather than one run.
#pragma once
#include <nlohmann/json.hpp>

namespace t6::cli {

// One entry per point (SIMD target, model, weights, cache type, context, batch, paging) of
// `results` (bench decode's JSON results, each carrying "round" and "simd_target"), in the order
// first measured: the point's fields that do not vary between rounds (bytes and FLOPs per step,
// kernel names), "rounds" (how many results it had), and for each timed quantity (step_ms,
// tokens_per_s, the roofline, attention and linear fractions and times, the probes, and
// paired_step_ratio, paired_step_ratio_bound_now and paired_floor_ratio_now where the results
// have them) its median over the rounds under the result's own key and its values in round order
// under <key>_rounds.
nlohmann::json decode_round_medians(const nlohmann::json& results);

// Prints decode_round_medians' entries as a table: per point the median step, its fraction of the
// floor probed now (roof), the highest fraction a step whose phases run one after the other can
// reach (reach: roofline_fraction_reachable_now), the attention's and the linear layers' fractions
// of their own floors, with --paired the first preset's step over this one's (the inverse of
// paired_step_ratio) and the most that speed-up can be with this model at its serial floor, the
// first preset as it ran (p_bound) or at its own serial floor (p_floor), and the step and roof of
// every round.
void print_round_medians(const nlohmann::json& summary, int rounds);

}  // namespace t6::cli
