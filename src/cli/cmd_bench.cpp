// t6 bench: benchmarks. `t6 bench step` times forward+backward training passes and reports
// tokens/s, model-FLOPs utilisation against a stated GEMM rate, and the ratio to the official
// PyTorch code's figure where the --peers file (study/peer_figures.h) has one for the
// configuration.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/args.h"
#include "cli/bench_training.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/gemm_probe.h"
#include "cli/machine_probe.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "core/profile.h"
#include "core/threads.h"
#include "core/timing.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "model/model_stats.h"

namespace t6::cli {

namespace {

void print_profile(const std::string& name, int steps) {
    auto entries = profile::entries();
    double total = 0;
    for (const auto& e : entries) total += e.seconds;
    std::printf("profile of %s (ms per step):\n", name.c_str());
    for (const auto& e : entries)
        std::printf("  %-26s %9.2f  %5.1f%%\n", e.name.c_str(), 1e3 * e.seconds / steps,
                    100 * e.seconds / total);
    profile::reset();
}

nlohmann::json bench_step_one(const std::string& name, const ModelConfig& cfg,
                              MatmulPrecision precision, int B, int T, int warmup, int steps,
                              double peak_gflops, bool prof,
                              const std::vector<study::PeerFigure>& peers) {
    Model model(cfg);
    model.init_weights(1234);
    model.set_matmul_precision(precision);
    std::mt19937 rng(42);
    std::vector<int32_t> x, y;
    random_batch(cfg.vocab_size, B, T, rng, x, y);
    std::vector<double> secs;
    float loss = 0;
    for (int i = 0; i < warmup + steps; i++) {
        model.zero_grad();
        profile::set_enabled(prof && i >= warmup);
        auto t0 = std::chrono::steady_clock::now();
        loss = model.forward_backward(x.data(), y.data(), B, T);
        double s = seconds_since(t0);
        if (i >= warmup) secs.push_back(s);
    }
    profile::set_enabled(false);
    if (prof) print_profile(name, steps);
    nlohmann::json j = training_bench_row(name, cfg, precision, model.num_params(), B, T, secs,
                                          double(B) * T, peak_gflops);
    j["loss"] = loss;
    j["activation_bytes"] = model.activation_bytes();
    add_peer_figure(j, peers, name, cfg, B, T, j["tokens_per_s"].get<double>());
    return j;
}

int bench_step(int argc, char** argv) {
    ArgParser p("bench step", "[options]",
                "Times forward+backward passes (no optimizer) and reports tokens/s and model-FLOPs "
                "utilisation.\nWithout --preset/--model it runs tiny-t6, tiny-mha (batch 8) and "
                "small-t6, small-mha (batch 4), sequence 256: the configurations the official code "
                "was\nmeasured on (--peers).");
    add_training_bench_options(p);
    p.flag("profile", "print where the time goes (per phase, summed over timed steps)");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    const bool prof = p.has("profile");
    const TrainingBench b = read_training_bench(p, "bench step", "step");
    const int T = b.seq, steps = b.steps, warmup = b.warmup;
    const double peak = b.peak_gflops;
    const std::vector<MatmulPrecision>& precisions = b.precisions;
    std::printf("SIMD target: %s\n", simd_summary().c_str());
    print_gemm_header(peak, precisions);
    std::printf("%-12s %5s %5s %5s %10s %10s %9s %7s %9s %8s %10s\n", "model", "prec", "batch",
                "seq", "step_s", "tokens/s", "GFLOP/s", "MFU", "GEMM_now", "MFU_now",
                "vs_official");
    nlohmann::json results = nlohmann::json::array();
    for (const auto& [name, cfg] : b.models) {
        const int B = b.batch_size(p, name);
        for (MatmulPrecision mp : precisions) {
            auto j = bench_step_one(name, cfg, mp, B, T, warmup, steps, peak, prof, b.peers);
            add_measured_gemm_rates(j, mp);
            const std::string ratio = peer_ratio(j);
            std::printf("%-12s %5s %5d %5d %10.4f %10.1f %9.1f %6.1f%% %9.1f %7.1f%% %10s\n",
                        name.c_str(), matmul_precision_name(mp), B, T,
                        j["step_s_median"].get<double>(), j["tokens_per_s"].get<double>(),
                        j["achieved_gflops"].get<double>(), 100 * j["mfu"].get<double>(),
                        j["gemm_gflops_measured_f32"].get<double>(),
                        100 * j["mfu_vs_measured_f32_gemm"].get<double>(), ratio.c_str());
            std::fflush(stdout);
            results.push_back(j);
        }
    }
    if (p.has("json"))
        std::printf("%s\n", training_bench_summary("step", peak, results).dump().c_str());
    return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    std::string sub = argc > 0 ? argv[0] : "";
    if (sub == "step") return bench_step(argc - 1, argv + 1);
    if (sub == "train") return cmd_bench_train(argc - 1, argv + 1);
    if (sub == "decode") return cmd_bench_decode(argc - 1, argv + 1);
    if (sub == "kernels") return cmd_bench_kernels(argc - 1, argv + 1);
    if (sub == "serve") return cmd_bench_serve(argc - 1, argv + 1);
    if (sub == "--help" || sub == "-h" || sub.empty()) {
        std::printf(
            "usage: t6 bench <benchmark> [options]\n\nbenchmarks:\n"
            "  step    forward+backward tokens/s and MFU (t6 bench step --help)\n"
            "  train   full training steps with clipping and AdamW (t6 bench train --help)\n"
            "  decode  decode tokens/s per kind, context and batch (t6 bench decode --help)\n"
            "  kernels every kernel family per SIMD target vs the measured roofs (t6 bench kernels "
            "--help)\n"
            "  serve   paged KV cache: concurrency at a budget, prefix reuse (t6 bench serve "
            "--help)\n");
        return sub.empty() ? 2 : 0;
    }
    fail("t6 bench: unknown benchmark '", sub,
         "' (available: step, train, decode, kernels, serve)");
}

}  // namespace t6::cli
