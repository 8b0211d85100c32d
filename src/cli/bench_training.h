// What the two training benchmarks (`t6 bench step`, `t6 bench train`) share: their options, the
// models they run by default (the CPU configurations the official code was measured on: tiny and
// small, T6 and MHA), and the official code's figure a row is compared with (--peers).
#pragma once
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/format.h"
#include "kernels/gemm.h"
#include "model/config.h"
#include "study/peer_figures.h"

namespace t6::cli {

struct TrainingBench {
    int seq = 256, steps = 5, warmup = 2;
    double peak_gflops = 370;
    std::vector<MatmulPrecision> precisions;
    std::vector<std::pair<std::string, ModelConfig>> models;  // name (preset or source), config
    std::vector<study::PeerFigure> peers;  // of this benchmark, from --peers (none without it)
    // --batch (checked positive by read_training_bench), else 8 for tiny presets and 4 otherwise
    // (the batches the official code was measured with).
    static int batch_size(const ArgParser& p, const std::string& model);
};

// The model options plus --batch, --seq, --steps, --warmup, --threads, --peak-gflops,
// --matmul-precision and --peers.
void add_training_bench_options(ArgParser& p);

// Reads and checks those options (one-line errors naming "t6 <command>", e.g. "bench step"),
// applies --threads, lists the models: the one chosen with --preset/--model, else tiny-t6,
// tiny-mha, small-t6, small-mha, and reads the peer figures of `benchmark` ("step", "train").
TrainingBench read_training_bench(const ArgParser& p, const std::string& command,
                                  const std::string& benchmark);

// Adds official_tokens_per_s and speedup_vs_official to a row when `peers` holds a figure for
// exactly this preset (no key overrides), batch and sequence length.
// B x T random token ids in [0, vocab) for inputs and for targets, drawn from rng in that order.
void random_batch(int vocab, int B, int T, std::mt19937& rng, std::vector<int32_t>& x,
                  std::vector<int32_t>& y);

// The fields both benchmarks report for a row: model, precision, params, shape, step timings of
// the timed steps `secs` (median, min, max), tokens/s (tokens_per_step / median), training FLOPs
// per token (3x forward), achieved GFLOP/s and MFU against peak_gflops.
nlohmann::json training_bench_row(const std::string& name, const ModelConfig& cfg,
                                  MatmulPrecision precision, size_t params, int B, int T,
                                  const std::vector<double>& secs, double tokens_per_step,
                                  double peak_gflops);

// The table's vs_official cell: "4.58x", or "-" when the row has no peer figure.
std::string peer_ratio(const nlohmann::json& row);

// The --json line's object: benchmark ("step", "train"), GEMM kernels, threads, OpenMP wait
// policy, SIMD fields, peak_gflops and the rows.
nlohmann::json training_bench_summary(const std::string& benchmark, double peak_gflops,
                                      const nlohmann::json& results);

void add_peer_figure(nlohmann::json& row, const std::vector<study::PeerFigure>& peers,
                     const std::string& name, const ModelConfig& cfg, int B, int T,
                     double tokens_per_s);

}  // namespace t6::cli
