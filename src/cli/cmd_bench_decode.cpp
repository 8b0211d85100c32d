// t6 bench decode: decoding tokens/s of every attention kind at equal parameter count, over
// context lengths and batch sizes, with the bytes read and FLOPs per step and the fraction of
// this machine's roofline achieved, against two rooflines: the nominal one (--bandwidth and
// --peak-gflops: this CPU's rates on a quiet machine) and the one measured in the same run, again
// before every point (streaming read bandwidth over 256 MiB and the fp32 FMA peak of the SIMD
// target in force, all threads), because the shared machine's speed varies from hour to hour.
// Where a step beat that probe (a disturbed probe allows it; so does a model whose weights fit
// in a cache), the point is probed again after its steps and the higher rate counts
// (probe_repeated in the JSON). The measured floor of a step is max(bytes / bandwidth, FLOPs /
// FMA peak); both terms are reported. FLOPs per step: 2 per weight per sequence plus attention
// over the cache per kind (infer/decode_cost.h: TPA counts FlashTPA's R_Q R_K d_h + h R_Q R_K +
// h R_V d_h multiply-adds per cached token and layer, MHA/GQA 2 h d_h, MLA its absorbed form
// h (2 d_c + d_h^R)). Where the attention kernel is a native
// bf16 one (vdpbf16ps over a bf16 cache on CPUs with AVX-512 BF16), the attention FLOPs are counted
// at the bf16 dot-product rate probed in the same way (attention_flops_rate_now_gflops), twice the
// fp32 FMA peak, not at the fp32 peak, which would overstate that kernel's floor.
// Each step is also split into its two phases, timed inside the decoder (decode_cost.h): attention
// (attn_ms: the cache write and attention over the cache, and MLA's absorbed products with its
// up-projections, against the floor of the cache's and those weights' bytes and FLOPs: column
// a_roof) and the rest, the linear layers (against the floor of the other weights: l_roof). The
// phases run one after the other, so the step's floor without overlap is the sum of the two
// (s_roof, roofline_serial_*), above max(bytes, FLOPs) when one phase is memory-bound and the
// other compute-bound.
//
// The cache is filled with random records up to the stated context (a decode step's cost does
// not depend on the cached values), then `steps` real decoding steps are timed.
//
// --paired holds every preset's model and cache at once and, at each point, takes one step of each
// in turn, step by step, so that the steps of the models compared meet the shared machine in the
// same minute; each result then carries its step times over the first preset's, step by step
// (paired_step_ratios) and their median (paired_step_ratio). Run one model after the other (the
// default), a ratio of medians mixes two states of a machine whose speed moves by a third within
// minutes (docs/decode-bench.md). Beside it, the lowest ratio the step could reach: this model at
// its serial floor over the first model's median step (paired_step_ratio_bound_now), and over the
// first model's serial floor (paired_floor_ratio_now: both models at their floors).
//
// --rounds N runs the whole sweep N times and --targets runs it under each SIMD target listed
// (ScopedSimdTarget), the targets in turn within each round, so that every target's rounds are
// spread over the same minutes. Every result carries its round and SIMD target; "summary" gives
// each point's median over its rounds (bench_decode_rounds.h) and the crossovers are taken from
// those medians, per target.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/bench_decode_rounds.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/gemm_probe.h"
#include "cli/machine_probe.h"
#include "cli/simd_targets_arg.h"
#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "infer/decode_cost.h"
#include "infer/decoder.h"
#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/int8_linear.h"
#include "model/model.h"

namespace t6::cli {

namespace {

// Fills `len` records of every layer of `slot` with pseudo-random values in [-1, 1).
void fill_random(KVCache& cache, int slot, int len, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    if (!cache.reserve(slot, len)) fail("KV cache pool too small for ", len, " tokens");
    const long rec = cache.record_numbers();
    std::vector<float> r(static_cast<size_t>(rec));
    for (int l = 0; l < cache.n_layer(); l++)
        for (int j = 0; j < len; j++) {  // record by record: they lie in the slot's blocks
            for (long i = 0; i < rec; i++) {
                x = x * 1664525u + 1013904223u;
                r[size_t(i)] = float(int32_t(x)) * (1.0f / 2147483648.0f);
            }
            cache.store(l, slot, j, r.data());  // converted to the cache's type (bf16, q8)
        }
    cache.set_length(slot, len);
}

// This machine's speed now: streaming read bandwidth (bytes/s; machine_probe.h, 256 MiB, all
// threads, best of 3), the fp32 FMA peak of the SIMD target in force (FLOP/s; machine_probe.h)
// and the fp32 GEMM rate (FLOP/s; gemm_probe.h at 1024 x 3072 x 768, best of 3). The shared
// machine's speed drifts within minutes, so the benchmark probes again right before every point
// and compares the point with that probe: floor = max(bytes / bandwidth, FLOPs / FMA peak).
class MachineProbe {
  public:
    double bandwidth() { return bw_.measure(); }
    double fma_peak() { return measure_fma_peak(3, 1L << 20); }
    double bf16_dot_peak() { return measure_bf16_dot_peak(3, 1L << 20); }
    double gemm_rate() { return measure_gemm_gflops(MatmulPrecision::f32, 3, 1024, true) * 1e9; }

  private:
    ReadBandwidthProbe bw_;
};

// For every T6 preset (TPA kinds) against every other preset measured with the same weights,
// cache type and batch: the crossover context, the smallest listed context from which on T6's
// median step is faster at every larger listed context (null: never). `results`: one entry per
// point (the medians over the rounds) at SIMD target `target`, whose name the rows carry.
// Printed and returned.
nlohmann::json crossover_table(const nlohmann::json& results, const std::string& target) {
    nlohmann::json table = nlohmann::json::array();
    auto is_t6 = [](const nlohmann::json& r) {
        const std::string a = r["attention"];
        return a == "tpa" || a == "tpa_kvonly";
    };
    // step_ms of (model, weights, cache, batch) by context, in the order measured.
    auto series = [&](const std::string& model, const nlohmann::json& key) {
        std::vector<std::pair<long, double>> v;
        for (const auto& r : results)
            if (r["model"] == model && r["weights"] == key["weights"] &&
                r["cache_type"] == key["cache_type"] && r["batch"] == key["batch"])
                v.emplace_back(r["context"].get<long>(), r["step_ms"].get<double>());
        std::sort(v.begin(), v.end());
        return v;
    };
    std::vector<std::string> t6s, bases;
    for (const auto& r : results) {
        const std::string m = r["model"];
        auto& list = is_t6(r) ? t6s : bases;
        if (std::find(list.begin(), list.end(), m) == list.end()) list.push_back(m);
    }
    std::vector<std::string> seen;
    for (const auto& r : results) {
        if (!is_t6(r)) continue;
        const std::string key_s =
            r["model"].get<std::string>() + "/" + r["weights"].get<std::string>() + "/" +
            r["cache_type"].get<std::string>() + "/" + std::to_string(r["batch"].get<int>());
        if (std::find(seen.begin(), seen.end(), key_s) != seen.end()) continue;
        seen.push_back(key_s);
        const auto mine = series(r["model"], r);
        for (const auto& base : bases) {
            const auto theirs = series(base, r);
            std::vector<std::pair<long, bool>> faster;  // contexts both measured
            for (const auto& [ctx, ms] : mine)
                for (const auto& [ctx2, ms2] : theirs)
                    if (ctx == ctx2) faster.emplace_back(ctx, ms < ms2);
            if (faster.empty()) continue;
            nlohmann::json from = nullptr;
            for (size_t i = faster.size(); i-- > 0 && faster[i].second;) from = faster[i].first;
            if (table.empty())
                std::printf("crossover (T6 faster from this context on; SIMD target %s):\n",
                            target.c_str());
            std::printf("  %-16s vs %-16s weights %-4s cache %-4s batch %3d: %s\n",
                        r["model"].get<std::string>().c_str(), base.c_str(),
                        r["weights"].get<std::string>().c_str(),
                        r["cache_type"].get<std::string>().c_str(), r["batch"].get<int>(),
                        from.is_null() ? "never (in the listed contexts)"
                                       : std::to_string(from.get<long>()).c_str());
            table.push_back({{"simd_target", target},
                             {"t6_model", r["model"]},
                             {"baseline_model", base},
                             {"weights", r["weights"]},
                             {"cache_type", r["cache_type"]},
                             {"batch", r["batch"]},
                             {"crossover_context", from}});
        }
    }
    return table;
}

// The decoding attention kernel a model of this config runs over a cache of this type at the
// SIMD target in force (flash_decode.h), for each result: FlashTPA, absorbed MLA (native bf16
// or not) or the flash K/V kernel.
std::string attention_kernel_name(const ModelConfig& cfg, CacheType ct) {
    if (cfg.is_tpa()) return "FlashTPA " + flash_tpa_kernel_name(ct == CacheType::bf16);
    if (cfg.attention == AttentionKind::mla)
        return "absorbed MLA " + flash_mla_kernel_name(ct == CacheType::bf16, cfg.kv_lora_rank);
    return "flash K/V Highway " + simd_highway_target_name();
}

// The targets' names, for the JSON.
std::vector<std::string> target_names(const std::vector<SimdTarget>& targets) {
    std::vector<std::string> names;
    for (SimdTarget t : targets) names.push_back(simd_target_name(t));
    return names;
}

// Seconds as milliseconds (the JSON's per-step times).
std::vector<double> step_times_ms(const std::vector<double>& secs) {
    std::vector<double> ms;
    for (double s : secs) ms.push_back(1e3 * s);
    return ms;
}

// One model at one point (weights, cache type, context, batch): its decoder with the cache filled
// to the context, and the times of its steps.
struct PointRun {
    std::string name;
    const Model* model;
    std::unique_ptr<Decoder> dec;
    std::string attn_kernel;
    bool native_bf16;
    int batch;
    std::vector<int> slots;
    std::vector<int32_t> toks;
    std::vector<float> logits;
    std::vector<double> secs, attn_secs, rest_secs;  // timed steps: whole, attention, the rest

    PointRun(std::string name_, const Model& m, WeightType wt, CacheType ct, long ctx, int batch_,
             int steps, int block_tokens)
        : name(std::move(name_)),
          model(&m),
          dec(std::make_unique<Decoder>(m, batch_, int(ctx + steps + 1), ct, wt,
                                        CachePaging{block_tokens, 0})),
          attn_kernel(attention_kernel_name(m.config(), ct)),
          native_bf16(attn_kernel.find("vdpbf16ps") != std::string::npos),
          batch(batch_),
          slots(size_t(batch_)),
          toks(size_t(batch_), 42),
          logits(size_t(batch_) * m.config().vocab_size) {
        for (int s = 0; s < batch; s++) {
            fill_random(dec->cache(), s, int(ctx), 17 + s);
            slots[size_t(s)] = s;
        }
    }
    // One decoding step of every sequence; timed: its times are kept.
    void step(bool timed) {
        auto t0 = std::chrono::steady_clock::now();
        dec->step(slots.data(), toks.data(), batch, logits.data());
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!timed) return;
        secs.push_back(s);
        attn_secs.push_back(dec->last_attention_seconds());
        rest_secs.push_back(s - dec->last_attention_seconds());
    }
};

}  // namespace

int cmd_bench_decode(int argc, char** argv) {
    ArgParser p("bench decode", "[options]",
                "Decode tokens/s per attention kind at equal parameter count, for each context "
                "length and batch size, with bytes and FLOPs per step and the achieved fraction "
                "of the roofline floor max(bytes/bandwidth, FLOPs/compute rate), nominal and "
                "probed in the same run; each step is also split into attention and the linear "
                "layers, each against its own floor, and the sum of the two floors (the phases "
                "run one after the other) is reported beside the overlapped one.");
    p.option("presets", "LIST", "comma-separated presets, config files or checkpoints",
             "small-mha,small-mqa,small-gqa,small-mla,small-t6,small-t6-kvonly,tiny-mha,tiny-t6");
    p.option("contexts", "LIST", "cached tokens per sequence", "1024,4096,16384,65536");
    p.option("batches", "LIST", "sequences decoded together", "1,8");
    p.option("steps", "N", "timed decode steps per point (median reported)", "5");
    p.option("block-tokens", "N",
             "paged KV cache: tokens per cache block (0: one contiguous block per sequence)", "0");
    p.option("cache", "LIST",
             "cache element types, each f32, bf16 or q8 (int8 rows with a scale each; swept)",
             "f32");
    p.option(
        "weights", "LIST",
        "weights of the linear layers, each f32, bf16, q8, q4, q8a8 or q4a8 (q8 / q4 weights times "
        "int8-quantized activations) (swept; quantized bytes include the block scales)",
        "f32");
    p.option("mem-limit", "BYTES",
             "skip points whose cache exceeds this (--paired: the point's caches together)",
             "12GiB");
    p.option("bandwidth", "GB/s", "memory bandwidth for the roofline (this CPU, quiet)", "54");
    p.option("peak-gflops", "G", "GEMM rate for the roofline (fp32, 2 threads)", "370");
    p.option("threads", "N", "threads", "all cores");
    p.flag("paired",
           "take the presets' steps in turn at each point (all models held at once), and report "
           "each one's step time over the first preset's, step by step (median)");
    p.option("rounds", "N",
             "runs of the whole sweep; the summary gives each point's median over them", "1");
    p.option("targets", "all|LIST",
             "SIMD targets to run, taken in turn within each round (all: every one this machine "
             "runs; now: the one in force, e.g. avx2,now)",
             "now");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    const bool paired = p.has("paired");
    const int rounds = p.get_int("rounds");
    if (rounds <= 0) fail("t6 bench decode: --rounds must be positive");
    if (p.has("threads")) set_num_threads(p.get_int("threads"));
    std::vector<CacheType> cache_types;
    std::vector<WeightType> weight_types;
    for (const auto& s : split_list(p.get("cache"))) cache_types.push_back(parse_cache_type(s));
    for (const auto& s : split_list(p.get("weights"))) weight_types.push_back(parse_weight_type(s));
    if (cache_types.empty() || weight_types.empty())
        fail("t6 bench decode: --cache and --weights need at least one type");
    const double mem_limit = parse_bytes(p.get("mem-limit"), "--mem-limit");
    const double bw = p.get_double("bandwidth") * 1e9, peak = p.get_double("peak-gflops") * 1e9;
    const int steps = p.get_int("steps");
    const int block_tokens = p.get_int("block-tokens");
    if (block_tokens < 0) fail("t6 bench decode: --block-tokens must be >= 0");
    if (steps <= 0 || !(bw > 0) || !(peak > 0))
        fail("t6 bench decode: --steps, --bandwidth and --peak-gflops must be positive");
    std::vector<long> contexts;
    std::vector<int> batches;
    for (const auto& s : split_list(p.get("contexts"))) {
        long v = std::atol(s.c_str());
        if (v <= 0) fail("t6 bench decode: bad context length '", s, "'");
        contexts.push_back(v);
    }
    for (const auto& s : split_list(p.get("batches"))) {
        int v = std::atoi(s.c_str());
        if (v <= 0) fail("t6 bench decode: bad batch size '", s, "'");
        batches.push_back(v);
    }
    // Every preset is checked before any output, so a bad name fails with one line.
    std::vector<std::pair<std::string, ModelConfig>> models;
    for (const auto& name : split_list(p.get("presets")))
        models.emplace_back(name, resolve_model_config(name));  // or a config / checkpoint
    if (paired && models.size() < 2) fail("t6 bench decode: --paired needs at least two presets");
    const std::string kernel = gemm_kernel_name();
    const std::string simd = simd_summary();  // a bad T6_SIMD fails here, before any output
    const std::vector<SimdTarget> targets =
        parse_simd_targets_arg(p.get("targets"), "t6 bench decode: --targets");
    MachineProbe probe;
    const double bw_start = probe.bandwidth(), peak_start = probe.gemm_rate();
    const double fma_start = probe.fma_peak(), bf16_start = probe.bf16_dot_peak();
    const std::string tpa_kernel(flash_tpa_kernel_name(cache_types[0] == CacheType::bf16));
    const std::string int8_kernel = int8_kernel_name();  // the q8a8 / q4a8 weights' GEMV
    std::printf(
        "GEMM: %s, threads: %d (OpenMP wait policy %s), cache %s, weights %s, FlashTPA: %s, int8 "
        "GEMV: %s, SIMD target: %s\n",
        kernel.c_str(), num_threads(), omp_wait_policy().c_str(), p.get("cache").c_str(),
        p.get("weights").c_str(), tpa_kernel.c_str(), int8_kernel.c_str(), simd.c_str());
    std::printf(
        "roofline nominal: %.0f GB/s, %.0f GFLOP/s | measured at the start: %.1f GB/s "
        "streaming read, %.0f GFLOP/s fp32 FMA peak, %.0f GFLOP/s fp32 GEMM (bandwidth and FMA "
        "peak again before every point: columns GB/s, FMA_GF/s; now_ms = max(mem_ms, fma_ms) and "
        "its roof use them)\n",
        bw / 1e9, peak / 1e9, bw_start / 1e9, fma_start / 1e9, peak_start / 1e9);
    if (bf16_start > 0)
        std::printf(
            "bf16 dot-product peak (vdpbf16ps) measured at the start: %.0f GFLOP/s; the attention "
            "FLOPs of the native bf16 kernels (bf16 cache) count at this rate, probed again before "
            "each such point\n",
            bf16_start / 1e9);
    nlohmann::json results = nlohmann::json::array();
    int round = 1;            // the sweep's round (1-based) and
    std::string target_name;  // SIMD target, for its results
    // One point (weights, cache, context, batch) of the models in `group`: each model's decoder and
    // filled cache, one probe of the machine, then the steps -- with several models (--paired)
    // taken in turn, one step of each at a time, so that every model's steps meet the shared
    // machine in the same state and their time ratios are measured step by step.
    auto run_point = [&](const std::vector<std::pair<std::string, const Model*>>& group,
                         WeightType wt, CacheType ct, long ctx, int batch) {
        // The point's caches are held together (--paired: one per model), so --mem-limit bounds
        // their sum: a model whose cache would take it past the limit is skipped.
        std::vector<PointRun> runs;
        double held_bytes = 0;
        for (const auto& [name, model] : group) {
            const ModelConfig& cfg = model->config();
            const double cache_bytes =
                double(batch) * (ctx + steps + 1) * cfg.n_layer * kv_record_bytes(cfg, ct);
            if (held_bytes + cache_bytes > mem_limit) {
                const std::string others =
                    held_bytes > 0 ? " (+ " + human_bytes(held_bytes) + " of the other models')"
                                   : "";
                std::printf("%-16s %4s %4s %6ld %5d   skipped: cache %s%s > --mem-limit\n",
                            name.c_str(), weight_type_name(wt), cache_type_name(ct), ctx, batch,
                            human_bytes(cache_bytes).c_str(), others.c_str());
                continue;
            }
            held_bytes += cache_bytes;
            runs.emplace_back(name, *model, wt, ct, ctx, batch, steps, block_tokens);
        }
        if (runs.empty()) return;
        const double bw_probe = probe.bandwidth(), fma_probe = probe.fma_peak();
        // A native bf16 attention kernel (vdpbf16ps) runs its multiply-adds at the bf16
        // dot-product rate, twice the fp32 FMA peak: its attention FLOPs are counted at that rate
        // (all of them, so the floor stays a lower bound though the softmax and accumulators are
        // float32).
        std::vector<double> attn_rates;
        for (const auto& run : runs)
            attn_rates.push_back(run.native_bf16 ? probe.bf16_dot_peak() : fma_probe);
        for (int i = 0; i <= steps; i++)  // the first step of each warms up
            for (auto& run : runs) run.step(i > 0);
        std::vector<double> paired_ratio(runs.size(), 1.0);  // median, per model (--paired)
        // The first model's median step and serial floor, for the others' paired bounds.
        double ref_step = 0, ref_serial_floor = 0;
        for (size_t m = 0; m < runs.size(); m++) {
            const PointRun& run = runs[m];
            const ModelConfig& cfg = run.model->config();
            double bw_now = bw_probe, fma_now = fma_probe, attn_rate = attn_rates[m];
            const std::string& attn_kernel = run.attn_kernel;
            const bool native_bf16 = run.native_bf16;
            const double med = median(run.secs);
            // The step's two phases (decode_cost.h), each against its own floor.
            const double attn_med = median(run.attn_secs), rest_med = median(run.rest_secs);
            const double best = *std::min_element(run.secs.begin(), run.secs.end());
            // Weight bytes as stored (quantized: codes and scales, MLA's
            // up-projections included; the norms at 4 bytes) per parameter.
            const DecodeCost cost = decode_step_cost(
                cfg, batch, ctx, run.dec->weight_bytes_per_step() / double(run.model->num_params()),
                // bytes per cached number (q8: scales included)
                double(kv_record_bytes(cfg, ct)) / double(kv_record_numbers(cfg)));
            const double floor = cost.floor_s(bw, peak);
            // A step that beat the probe before it means a disturbed probe (no step
            // reads memory faster than the machine can, nor multiplies faster than
            // its peak) or weights that sit in a cache: probe again after the point
            // and keep the higher rate. (Seen on the shared Xeon: a bandwidth probe
            // of 11 GB/s between probes of 32-35, which put a 4K step at 2.4 times
            // its floor.)
            bool reprobed = false;
            if (cost.bytes / bw_now > best) {
                bw_now = std::max(bw_now, probe.bandwidth());
                reprobed = true;
            }
            if (cost.compute_s(fma_now, attn_rate) > best) {
                fma_now = std::max(fma_now, probe.fma_peak());
                attn_rate = native_bf16 ? std::max(attn_rate, probe.bf16_dot_peak()) : fma_now;
                reprobed = true;
            }
            const double mem_now = cost.bytes / bw_now,
                         fma_time_now = cost.compute_s(fma_now, attn_rate);
            const double floor_now = std::max(mem_now, fma_time_now);
            const double attn_floor_now = cost.attention_floor_s(bw_now, fma_now, attn_rate);
            const double linear_floor_now = cost.linear_floor_s(bw_now, fma_now);
            const double serial_floor_now = attn_floor_now + linear_floor_now;
            // Roofline fractions of the median step; the best step is printed too (the
            // shared machine's noise only ever slows a step down).
            std::printf(
                "%-16s %4s %4s %6ld %5d %9.2f %9.2f %10.1f %9.1f %10.3f %9.2f %5.0f%% "
                "%6.1f "
                "%8.0f %8.2f %8.2f %9.2f %5.0f%% %8.2f %5.0f%% %5.0f%% %5.0f%%\n",
                run.name.c_str(), weight_type_name(wt), cache_type_name(ct), ctx, batch, 1e3 * med,
                1e3 * best, batch / med, cost.bytes / 1e6, cost.flops / 1e9, 1e3 * floor,
                100 * floor / med, bw_now / 1e9, fma_now / 1e9, 1e3 * mem_now, 1e3 * fma_time_now,
                1e3 * floor_now, 100 * floor_now / med, 1e3 * attn_med,
                100 * attn_floor_now / attn_med, 100 * linear_floor_now / rest_med,
                100 * serial_floor_now / med);
            std::fflush(stdout);
            results.push_back(
                {{"round", round},
                 {"simd_target", target_name},
                 {"model", run.name},
                 {"attention", attention_kind_name(cfg.attention)},
                 {"weights", weight_type_name(wt)},
                 {"cache_type", cache_type_name(ct)},
                 {"attention_kernel", attn_kernel},
                 {"context", ctx},
                 {"batch", batch},
                 {"kv_block_tokens", block_tokens},
                 {"step_ms", 1e3 * med},
                 {"best_step_ms", 1e3 * best},
                 {"step_times_ms", step_times_ms(run.secs)},
                 {"tokens_per_s", batch / med},
                 {"bytes_per_step", cost.bytes},
                 {"flops_per_step", cost.flops},
                 {"roofline_floor_ms", 1e3 * floor},
                 {"roofline_fraction", floor / med},
                 {"roofline_floor_now_ms", 1e3 * floor_now},
                 {"roofline_memory_now_ms", 1e3 * mem_now},
                 {"roofline_compute_now_ms", 1e3 * fma_time_now},
                 {"roofline_bound_now", fma_time_now > mem_now ? "compute" : "memory"},
                 {"roofline_fraction_now", floor_now / med},
                 {"attention_ms", 1e3 * attn_med},
                 {"attention_floor_now_ms", 1e3 * attn_floor_now},
                 {"attention_fraction_now", attn_floor_now / attn_med},
                 {"linear_ms", 1e3 * rest_med},
                 {"linear_floor_now_ms", 1e3 * linear_floor_now},
                 {"linear_fraction_now", linear_floor_now / rest_med},
                 {"roofline_serial_floor_now_ms", 1e3 * serial_floor_now},
                 {"roofline_serial_fraction_now", serial_floor_now / med},
                 // The highest roofline_fraction_now a step whose two phases run one after the
                 // other (a batch-1 step) reaches, with both phases at their own floors.
                 {"roofline_fraction_reachable_now", floor_now / serial_floor_now},
                 {"bandwidth_now_gb_per_s", bw_now / 1e9},
                 {"probe_repeated", reprobed},
                 {"fma_peak_now_gflops", fma_now / 1e9},
                 {"attention_flops_rate_now_gflops", attn_rate / 1e9}});
            if (paired) {
                // This model's step time over the first model's, step by step (the same round),
                // and the median of those ratios.
                const PointRun& ref = runs.front();
                std::vector<double> ratio;
                for (size_t i = 0; i < run.secs.size(); i++)
                    ratio.push_back(run.secs[i] / ref.secs[i]);
                paired_ratio[m] = median(ratio);
                if (m == 0) ref_step = med, ref_serial_floor = serial_floor_now;
                results.back()["paired_with"] = ref.name;
                results.back()["paired_step_ratio"] = paired_ratio[m];
                results.back()["paired_step_ratios"] = ratio;
                // How low the ratio can go: this model at its serial floor (both phases at their
                // own floors, one after the other, as a batch-1 step runs them) over the first
                // model as it ran, and over the first model at its serial floor too. A target
                // ratio below the second is met only while the first model runs short of its
                // own floor.
                results.back()["paired_step_ratio_bound_now"] = serial_floor_now / ref_step;
                results.back()["paired_floor_ratio_now"] = serial_floor_now / ref_serial_floor;
            }
        }
        if (paired && runs.size() > 1) {
            std::printf(
                "paired steps (%s, %s, context %ld, batch %d): %s step time over this one's, "
                "median of %d steps:",
                weight_type_name(wt), cache_type_name(ct), ctx, batch, runs.front().name.c_str(),
                steps);
            for (size_t m = 1; m < runs.size(); m++)
                std::printf(" %s %.2fx%s", runs[m].name.c_str(), 1.0 / paired_ratio[m],
                            m + 1 < runs.size() ? "," : "");
            std::printf("\n");
        }
        std::fflush(stdout);
    };
    // Every model at once (--paired), so that each point's steps can alternate between them.
    std::vector<std::unique_ptr<Model>> held;
    std::vector<std::pair<std::string, const Model*>> group;
    if (paired)
        for (const auto& [name, cfg] : models) {
            held.push_back(std::make_unique<Model>(cfg));
            held.back()->init_weights(1);
            group.emplace_back(name, held.back().get());
        }
    // The whole sweep, once per round and SIMD target.
    auto sweep = [&] {
        std::printf(
            "%-16s %4s %4s %6s %5s %9s %9s %10s %9s %10s %9s %6s %6s %8s %8s %8s %9s %6s %8s %6s "
            "%6s %6s\n",
            "model", "wts", "kv", "ctx", "batch", "step_ms", "best_ms", "tokens/s", "MB/step",
            "GFLOP/step", "floor_ms", "roof", "GB/s", "FMA_GF/s", "mem_ms", "fma_ms", "now_ms",
            "roof", "attn_ms", "a_roof", "l_roof", "s_roof");
        if (paired) {
            for (WeightType wt : weight_types)
                for (CacheType ct : cache_types)
                    for (long ctx : contexts)
                        for (int batch : batches) run_point(group, wt, ct, ctx, batch);
            return;
        }
        for (const auto& [name, cfg] : models) {
            Model model(cfg);
            model.init_weights(1);
            for (WeightType wt : weight_types)
                for (CacheType ct : cache_types)
                    for (long ctx : contexts)
                        for (int batch : batches) run_point({{name, &model}}, wt, ct, ctx, batch);
        }
    };
    const bool several = rounds > 1 || targets.size() > 1;
    for (round = 1; round <= rounds; round++)
        for (SimdTarget t : targets) {
            const ScopedSimdTarget scope(t);
            target_name = simd_target_name(t);
            if (several)
                std::printf("round %d of %d, SIMD target %s, FlashTPA: %s, int8 GEMV: %s\n", round,
                            rounds, simd_summary().c_str(),
                            flash_tpa_kernel_name(cache_types[0] == CacheType::bf16).c_str(),
                            int8_kernel_name());
            sweep();
        }
    const nlohmann::json summary = decode_round_medians(results);
    if (several) print_round_medians(summary, rounds);
    // The crossovers of each target, from its points' medians.
    nlohmann::json crossovers = nlohmann::json::array();
    for (SimdTarget t : targets) {
        nlohmann::json points = nlohmann::json::array();
        for (const auto& e : summary)
            if (e["simd_target"] == simd_target_name(t)) points.push_back(e);
        for (auto& row : crossover_table(points, simd_target_name(t))) crossovers.push_back(row);
    }
    if (p.has("json")) {
        nlohmann::json out = {{"benchmark", "decode"},
                              {"gemm_kernel", kernel},
                              {"flash_tpa_kernel", tpa_kernel},
                              {"int8_gemv_kernel", int8_kernel},
                              {"threads", num_threads()},
                              {"omp_wait_policy", omp_wait_policy()},
                              {"paired", paired},
                              {"rounds", rounds},
                              {"targets", target_names(targets)},
                              {"cache_type", p.get("cache")},
                              {"weights", p.get("weights")},
                              {"bandwidth_start_gb_per_s", bw_start / 1e9},
                              {"fma_peak_start_gflops", fma_start / 1e9},
                              {"bf16_dot_peak_start_gflops", bf16_start / 1e9},
                              {"gemm_gflops_start", peak_start / 1e9},
                              {"bandwidth_gb_per_s", bw / 1e9},
                              {"peak_gflops", peak / 1e9},
                              {"results", results},
                              {"summary", summary},
                              {"crossovers", crossovers}};
        add_simd_fields(out);
        std::printf("%s\n", out.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
