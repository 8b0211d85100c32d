#include "cli/bench_training.h"

#include <algorithm>

#include "cli/format.h"
#include "cli/gemm_probe.h"
#include "cli/machine_probe.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/threads.h"
#include "core/timing.h"
#include "model/model_stats.h"

namespace t6::cli {

namespace {
// The official PyTorch code's figures as measured for this project (a data file of the repository).
constexpr const char* kDefaultPeers = "bench/official-pytorch-cpu.json";
}  // namespace

void add_training_bench_options(ArgParser& p) {
    add_model_options(p);
    p.option("batch", "B", "sequences per step (default 8 for tiny, 4 otherwise)");
    p.option("seq", "T", "sequence length", "256");
    p.option("steps", "N", "timed steps (the median is reported)", "5");
    p.option("warmup", "N", "untimed steps first", "2");
    p.option("threads", "N", "threads (OpenMP and GEMM)", "all cores");
    p.option(
        "peak-gflops", "G",
        "GEMM rate MFU is relative to (the nominal fp32 rate of this project's CPU, 2 threads)",
        "370");
    p.option("matmul-precision", "LIST",
             "f32, bf16 or f32,bf16: GEMM precision(s) to run (bf16: bf16 inputs, f32 "
             "accumulation; weights, activations and optimizer stay f32)",
             "f32");
    p.option("peers", "FILE",
             "official code's tokens/s to compare with (JSON; the default is read only when it "
             "exists, i.e. run from the repository root)",
             kDefaultPeers);
}

TrainingBench read_training_bench(const ArgParser& p, const std::string& command,
                                  const std::string& benchmark) {
    TrainingBench b;
    const std::string tool = "t6 " + command;
    if (p.has("threads")) set_num_threads(p.get_int("threads"));
    b.seq = p.get_int("seq");
    b.steps = p.get_int("steps");
    b.warmup = p.get_int("warmup");
    b.peak_gflops = p.get_double("peak-gflops");
    b.precisions = parse_precision_list(p.get("matmul-precision"), tool + ": --matmul-precision");
    if (b.seq <= 0 || b.steps <= 0 || b.warmup < 0 || !(b.peak_gflops > 0))
        fail(tool, ": --seq, --steps and --peak-gflops must be positive, --warmup >= 0");
    if (p.has("batch") && p.get_int("batch") <= 0) fail(tool, ": --batch must be positive");
    if (p.has("preset") || p.has("model") || !p.positionals().empty()) {
        ModelChoice m = resolve_model_choice(p, command);
        b.models.push_back({m.source, m.config});
    } else {
        for (const char* n : {"tiny-t6", "tiny-mha", "small-t6", "small-mha"})
            b.models.push_back({n, preset_config(n)});
    }
    // An explicit --peers must exist; the default is optional (no comparison elsewhere).
    const std::string peers = p.get("peers");
    if (p.has("peers") || file_exists(peers)) b.peers = study::read_peer_figures(peers, benchmark);
    return b;
}

int TrainingBench::batch_size(const ArgParser& p, const std::string& model) {
    return p.has("batch") ? p.get_int("batch") : (model.rfind("tiny", 0) == 0 ? 8 : 4);
}

void add_peer_figure(nlohmann::json& row, const std::vector<study::PeerFigure>& peers,
                     const std::string& name, const ModelConfig& cfg, int B, int T,
                     double tokens_per_s) {
    for (const auto& p : peers)
        if (name == p.preset && B == p.batch && T == p.seq &&
            cfg.to_json() == preset_config(p.preset).to_json()) {
            row["official_tokens_per_s"] = p.tokens_per_s;
            row["speedup_vs_official"] = tokens_per_s / p.tokens_per_s;
        }
}

void random_batch(int vocab, int B, int T, std::mt19937& rng, std::vector<int32_t>& x,
                  std::vector<int32_t>& y) {
    std::uniform_int_distribution<int> tok(0, vocab - 1);
    x.resize(size_t(B) * T);
    y.resize(size_t(B) * T);
    for (auto& t : x) t = tok(rng);
    for (auto& t : y) t = tok(rng);
}

nlohmann::json training_bench_row(const std::string& name, const ModelConfig& cfg,
                                  MatmulPrecision precision, size_t params, int B, int T,
                                  const std::vector<double>& secs, double tokens_per_step,
                                  double peak_gflops) {
    const double med = median(secs);
    const double tps = tokens_per_step / med;
    const double flops = 3.0 * forward_flops_per_token(cfg, T);
    return {{"model", name},
            {"matmul_precision", matmul_precision_name(precision)},
            {"params", params},
            {"batch", B},
            {"seq_len", T},
            {"steps", secs.size()},
            {"step_s_median", med},
            {"step_s_min", *std::min_element(secs.begin(), secs.end())},
            {"step_s_max", *std::max_element(secs.begin(), secs.end())},
            {"tokens_per_s", tps},
            {"train_flops_per_token", flops},
            {"achieved_gflops", tps * flops / 1e9},
            {"mfu", tps * flops / (peak_gflops * 1e9)}};
}

std::string peer_ratio(const nlohmann::json& row) {
    return row.contains("speedup_vs_official")
               ? fixed(row["speedup_vs_official"].get<double>(), 2) + "x"
               : "-";
}

nlohmann::json training_bench_summary(const std::string& benchmark, double peak_gflops,
                                      const nlohmann::json& results) {
    nlohmann::json out = {{"benchmark", benchmark},
                          {"gemm_kernel", gemm_kernel_name()},
                          {"gemm_bf16_kernel", gemm_bf16_kernel_name()},
                          {"threads", num_threads()},
                          {"omp_wait_policy", omp_wait_policy()},
                          {"peak_gflops", peak_gflops},
                          {"results", results}};
    add_simd_fields(out);
    return out;
}

}  // namespace t6::cli
