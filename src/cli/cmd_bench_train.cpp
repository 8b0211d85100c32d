// t6 bench train: full training steps (forward, backward, gradient clipping, AdamW) on the
// configurations the official code was measured on, reported as tokens/s, model-FLOPs utilisation
// against a stated GEMM rate, and the ratio to the official PyTorch code's full-step figure (from
// the --peers file, study/peer_figures.h).

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
#include "core/sysinfo.h"
#include "core/threads.h"
#include "core/timing.h"
#include "kernels/gemm.h"
#include "model/config.h"
#include "model/model.h"
#include "model/model_stats.h"
#include "train/adamw.h"
#include "train/dist.h"
#include "train/trainer.h"

namespace t6::cli {

namespace {

nlohmann::json bench_one(const std::string& name, const ModelConfig& cfg, MatmulPrecision precision,
                         int B, int T, int warmup, int steps, double peak_gflops,
                         const std::vector<study::PeerFigure>& peers, GemmProbes& probes) {
    Model model(cfg);
    model.init_weights(1234);
    model.set_matmul_precision(precision);
    AdamW opt(model.num_params(), AdamWConfig{});
    std::mt19937 rng(42);
    std::vector<int32_t> x, y;
    random_batch(cfg.vocab_size, B, T, rng, x, y);
    // Under mpirun: every rank runs B sequences of its own (different tokens per rank) and the
    // gradients are all-reduced as in t6 train, in buckets during backward.
    const int ranks = dist::size();
    std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
    for (int i = 0; i < dist::rank(); i++)
        for (auto& t : x) t = tok(rng);
    DataParallel dp;
    dp.ranks = ranks;
    dp.rank = dist::rank();
    DataParallel* dpp = ranks > 1 ? &dp : nullptr;
    std::vector<double> secs, opt_secs, exposed, blocking, blocking_secs;
    StepResult r;
    auto timed_step = [&]() {
        const auto t0 = std::chrono::steady_clock::now();
        r = train_step(model, opt, x.data(), y.data(), B, T, 1, 6e-4, 1.0, dpp);
        return seconds_since(t0);
    };
    for (int i = 0; i < warmup + steps; i++) {
        const double s = timed_step();
        if (i >= warmup) {
            secs.push_back(s);
            exposed.push_back(dp.backward_mpi_s + dp.wait_s);
            probes.take(precision);  // the GEMM rate of this step's minute (MFU_now)
        }
    }
    if (ranks > 1) {
        // The same steps with the whole all-reduce after backward: its full cost.
        dp.overlap = false;
        for (int i = 0; i < steps; i++) {
            blocking_secs.push_back(timed_step());
            blocking.push_back(dp.wait_s);
        }
    }
    // The optimizer part alone (norm, clip and AdamW over the flat buffers), for the breakdown.
    for (int i = 0; i < std::max(3, steps); i++) {
        const auto t0 = std::chrono::steady_clock::now();
        const double norm = grad_global_norm(model.grads(), model.num_params());
        opt.step(model.params(), model.grads(), 6e-4, clip_coefficient(norm, 1.0f));
        opt_secs.push_back(seconds_since(t0));
    }
    const double tokens = double(B) * T * ranks;
    nlohmann::json j = training_bench_row(name, cfg, precision, model.num_params(), B, T, secs,
                                          tokens, peak_gflops);
    const double tps = j["tokens_per_s"].get<double>();
    j["optimizer_s_median"] = median(opt_secs);
    j["loss"] = r.loss;
    j["grad_norm"] = r.grad_norm;
    j["peak_rss_bytes"] = peak_rss_bytes();
    j["ranks"] = ranks;
    if (ranks > 1) {
        // allreduce_s: the gradient all-reduce alone (after backward, nothing to hide behind);
        // exposed_s: what the step still spends in MPI with the buckets started during backward
        // (calls during backward + the wait after it). Hidden = 1 - exposed / all-reduce.
        const double ar = median(blocking), ex = median(exposed);
        j["grad_allreduce_s_median"] = ar;
        j["grad_allreduce_exposed_s_median"] = ex;
        j["grad_allreduce_hidden_fraction"] = ar > 0 ? 1.0 - ex / ar : 0.0;
        j["step_s_median_no_overlap"] = median(blocking_secs);
        j["tokens_per_s_no_overlap"] = tokens / median(blocking_secs);
        j["grad_buckets"] = model.grad_buckets().size();
    }
    // Only the preset itself (no key overrides) at the measured shape, in one process, has a
    // peer figure.
    if (ranks == 1) add_peer_figure(j, peers, name, cfg, B, T, tps);
    return j;
}

}  // namespace

int cmd_bench_train(int argc, char** argv) {
    ArgParser p("bench train", "[options]",
                "Times full training steps (forward, backward, gradient clipping, AdamW) and "
                "reports tokens/s,\nmodel-FLOPs utilisation and the ratio to the official code's "
                "full-step figure. Without\n--preset/--model it runs tiny-t6, tiny-mha (batch 8) "
                "and small-t6, small-mha (batch 4),\nsequence 256: the configurations the official "
                "code was measured on (--peers). Peak RSS is\nthe process's so far.");
    add_training_bench_options(p);
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    dist::init();  // under mpirun: data-parallel steps over the ranks (batch B per rank)
    if (dist::rank() != 0 && !std::freopen("/dev/null", "w", stdout))
        fail("t6 bench train: cannot silence rank ", dist::rank(), "'s output");
    const TrainingBench b = read_training_bench(p, "bench train", "train");
    const int T = b.seq, steps = b.steps, warmup = b.warmup;
    const double peak = b.peak_gflops;
    const std::vector<MatmulPrecision>& precisions = b.precisions;
    std::printf("SIMD target: %s\n", simd_summary().c_str());
    print_gemm_header(peak, precisions, "after each timed step (the median of those probes)");
    if (dist::size() > 1)
        std::printf("data-parallel: %d ranks x batch B each (tokens/s over all ranks)\n",
                    dist::size());
    std::printf("%-12s %5s %5s %5s %9s %9s %10s %9s %7s %9s %8s %10s %10s\n", "model", "prec",
                "batch", "seq", "step_s", "optim_s", "tokens/s", "GFLOP/s", "MFU", "GEMM_now",
                "MFU_now", "vs_official", "peak_RSS");
    nlohmann::json results = nlohmann::json::array();
    for (const auto& [name, cfg] : b.models) {
        const int B = b.batch_size(p, name);
        for (MatmulPrecision mp : precisions) {
            GemmProbes probes;
            auto j = bench_one(name, cfg, mp, B, T, warmup, steps, peak, b.peers, probes);
            add_measured_gemm_rates(j, mp, probes);
            const std::string ratio = peer_ratio(j);
            std::printf(
                "%-12s %5s %5d %5d %9.4f %9.4f %10.1f %9.1f %6.1f%% %9.1f %7.1f%% %10s %10s\n",
                name.c_str(), matmul_precision_name(mp), B, T, j["step_s_median"].get<double>(),
                j["optimizer_s_median"].get<double>(), j["tokens_per_s"].get<double>(),
                j["achieved_gflops"].get<double>(), 100 * j["mfu"].get<double>(),
                j["gemm_gflops_measured_f32"].get<double>(),
                100 * j["mfu_vs_measured_f32_gemm"].get<double>(), ratio.c_str(),
                human_bytes(j["peak_rss_bytes"].get<double>()).c_str());
            if (j.contains("grad_allreduce_s_median"))
                std::printf(
                    "  gradient all-reduce %.4f s/step alone, %.4f s/step exposed with the %d "
                    "buckets started during backward: %.0f%% hidden; without overlap %.1f "
                    "tokens/s\n",
                    j["grad_allreduce_s_median"].get<double>(),
                    j["grad_allreduce_exposed_s_median"].get<double>(),
                    j["grad_buckets"].get<int>(),
                    100 * j["grad_allreduce_hidden_fraction"].get<double>(),
                    j["tokens_per_s_no_overlap"].get<double>());
            std::fflush(stdout);
            results.push_back(j);
        }
    }
    if (p.has("json")) {
        nlohmann::json out = training_bench_summary("train", peak, results);
        out["ranks"] = dist::size();
        std::printf("%s\n", out.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
