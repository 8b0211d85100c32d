// The GEMM rate of this machine, measured now: benchmarks report model-FLOPs utilisation against
// it as well as against a nominal rate (--peak-gflops: the fp32 rate this project's CPU reached
// on a quiet machine), since this shared machine's speed changes from minute to minute and only
// ratios measured side by side are meaningful.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace t6::cli {

// GFLOP/s of `reps` products (after a quarter second of untimed ones) of one GPT-2-sized shape (M x
// 3072 x 768: M tokens through a 768 -> 3072 MLP projection, forward NT), at the given matmul
// precision and the current thread count: the median of the reps, or with `best` the fastest. The
// one GEMM probe of the benchmarks (bench step / train: M = 2048, median of 7; bench decode: M =
// 1024, best of 3).
double measure_gemm_gflops(MatmulPrecision precision, int reps = 7, int M = 2048,
                           bool best = false);

// "f32", "bf16" or "f32,bf16" -> the precisions to run; a one-line error naming `where`.
std::vector<MatmulPrecision> parse_precision_list(const std::string& s, const std::string& where);

// GEMM rates probed between a benchmark's timed steps (one probe, the default measure_gemm_gflops,
// after each step): on a shared machine whose speed changes from minute to minute, the median of
// probes spread over the steps tracks the steps' conditions better than one probe after them.
struct GemmProbes {
    std::vector<double> f32, bf16;  // GFLOP/s, one per probe
    // Probes the fp32 rate, and the bf16 rate too for a bf16 row.
    void take(MatmulPrecision precision);
};

// Adds to a benchmark row that has "achieved_gflops": gemm_gflops_measured_f32 and
// mfu_vs_measured_f32_gemm (the MFU definition, against the fp32 rate of this minute),
// and for a bf16 row also the bf16 pair. The rate is the median of `probes` where it has any
// (with gemm_probes, the count, and gemm_gflops_measured_f32_min/_max), else one probe now.
void add_measured_gemm_rates(nlohmann::json& row, MatmulPrecision precision,
                             const GemmProbes& probes = {});

// The lines a training benchmark starts with: GEMM kernels, threads, what MFU is against (`when`
// the fp32 rate is measured).
void print_gemm_header(double peak_gflops, const std::vector<MatmulPrecision>& precisions,
                       const char* when = "right after each row");

}  // namespace t6::cli
