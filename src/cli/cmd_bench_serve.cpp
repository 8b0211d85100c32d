// t6 bench serve: what the paged KV cache buys a server (docs/paged-cache.md), in process.
//  1. Concurrency at a fixed budget: a contiguous cache reserves max_context tokens per slot,
//     so it holds budget / (max_context x bytes per token) sequences whatever their length; the
//     paged pool admits sequences of --context tokens while it has their blocks. Both counts,
//     and decode tokens/s with that many sequences of --context cached tokens (random records,
//     as bench decode) decoded together.
//  2. Prefix reuse: --prefix-requests prompts of one --prefix-tokens prefix and a few tokens of
//     their own, prefilled one after the other with and without the prefix cache: blocks held and
//     total prefill time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/machine_probe.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/timing.h"
#include "infer/decoder.h"
#include "model/model.h"

namespace t6::cli {

namespace {

using Clock = std::chrono::steady_clock;  // seconds_since and median: core/timing.h

// len records of every layer of `slot` (reserved) set to pseudo-random values in [-1, 1).
void fill_records(KVCache& cache, int slot, int len, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    const long rec = cache.record_numbers();
    std::vector<float> r(static_cast<size_t>(rec));
    for (int l = 0; l < cache.n_layer(); l++)
        for (int j = 0; j < len; j++) {
            for (long i = 0; i < rec; i++) {
                x = x * 1664525u + 1013904223u;
                r[size_t(i)] = float(int32_t(x)) * (1.0f / 2147483648.0f);
            }
            cache.store(l, slot, j, r.data());  // converted to the cache's type (bf16, q8)
        }
    cache.set_length(slot, len);
}

// Median seconds of `steps` batched decoding steps of sequences 0..n-1 (one warm-up step first).
double decode_step_seconds(Decoder& dec, int n, int steps) {
    std::vector<int> slots(static_cast<size_t>(n));
    for (int s = 0; s < n; s++) slots[size_t(s)] = s;
    std::vector<int32_t> toks(size_t(n), 42);
    std::vector<float> logits(size_t(n) * size_t(dec.config().vocab_size));
    std::vector<double> secs;
    for (int i = 0; i <= steps; i++) {
        const auto t0 = Clock::now();
        dec.step(slots.data(), toks.data(), n, logits.data());
        if (i > 0) secs.push_back(seconds_since(t0));
    }
    return median(secs);
}

struct PrefixRun {
    long blocks = 0;      // held once every prompt is prefilled
    long blocks_one = 0;  // held by the first prompt alone
    double prefill_s = 0;
    int timed = 0;  // requests prefilled (the others' time extrapolated: all cost the same)
};

// Without sharing every request costs the same prefill, so only the first `timed` run; the rest
// take their blocks (the count is exact) and their time is extrapolated.
PrefixRun prefix_run(const Model& model, CacheType ct, int B, int requests, int prefix, int own,
                     bool share, int timed) {
    const int len = prefix + own;
    Decoder dec(model, requests, len + 1, ct, WeightType::f32,
                CachePaging{B, long(requests) * ((len + B - 1) / B)});
    dec.cache().set_prefix_caching(share);
    std::mt19937 rng(1);
    const int V = model.config().vocab_size;
    std::vector<int32_t> common(static_cast<size_t>(prefix));
    for (auto& t : common) t = int32_t(rng() % unsigned(V));
    std::vector<float> logits(static_cast<size_t>(V));
    PrefixRun r;
    for (int i = 0; i < requests; i++) {
        std::vector<int32_t> p = common;
        for (int k = 0; k < own; k++) p.push_back(int32_t(rng() % unsigned(V)));
        if (!share && i >= timed) {
            if (!dec.cache().reserve(i, len)) fail("internal: prefix benchmark pool too small");
            continue;
        }
        r.timed++;
        const auto t0 = Clock::now();
        const int shared = dec.cache().share_prefix(i, p.data(), len);
        dec.append(i, p.data() + shared, len - shared, logits.data());
        r.prefill_s += seconds_since(t0);
        if (i == 0) r.blocks_one = dec.cache().pool().used_blocks();
    }
    r.blocks = dec.cache().pool().used_blocks();
    r.prefill_s *= double(requests) / r.timed;
    return r;
}

}  // namespace

int cmd_bench_serve(int argc, char** argv) {
    ArgParser p("bench serve", "[options]",
                "What the paged KV cache buys a server, in process: the sequences of --context "
                "tokens a --kv-budget admits, contiguous (budget / (max_context x bytes per "
                "token)) vs paged (blocks), decode tokens/s at those concurrencies, and the "
                "blocks and prefill time of requests sharing a prompt prefix with and without "
                "the prefix cache.");
    p.option("preset", "NAME", "model preset (random weights)", "small-t6");
    p.option("kv-budget", "BYTES", "KV cache memory", "2GiB");
    p.option("context", "N", "tokens cached per sequence", "4096");
    p.option("max-context", "N", "tokens a contiguous slot reserves (the server's --max-context)",
             "16384");
    p.option("block-tokens", "N", "tokens per cache block", "32");
    p.option("cache", "TYPE", "cache element type: f32, bf16 or q8", "f32");
    p.option("steps", "N", "timed decode steps per point (median reported)", "3");
    p.option("prefix-requests", "N", "requests sharing the prefix (0: skip part 2)", "32");
    p.option("prefix-tokens", "N", "tokens of the shared prefix", "1000");
    p.option("own-tokens", "N", "tokens of each request's own after the prefix", "8");
    p.option("prefix-block-tokens", "N", "tokens per cache block in part 2", "the --block-tokens");
    p.option("unshared-timed", "N",
             "part 2 without reuse: requests prefilled (the rest extrapolated: equal cost)", "2");
    p.option("threads", "N", "threads", "all cores");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.has("threads"))
        set_num_threads(
            int(check_thread_count(p.get_int64("threads"), "t6 bench serve: --threads")));
    const ModelConfig cfg = preset_config(p.get("preset"));
    const CacheType ct = parse_cache_type(p.get("cache"));
    const double budget = parse_bytes(p.get("kv-budget"), "--kv-budget");
    const int context = p.get_int("context"), max_context = p.get_int("max-context");
    const int B = p.get_int("block-tokens"), steps = p.get_int("steps");
    const int requests = p.get_int("prefix-requests"), prefix = p.get_int("prefix-tokens");
    const int own = p.get_int("own-tokens");
    const int PB = p.has("prefix-block-tokens") ? p.get_int("prefix-block-tokens") : B;
    if (context < 2 || max_context < context)
        fail("t6 bench serve: need 2 <= --context <= --max-context");
    if (B < 1 || PB < 1 || steps < 1)
        fail("t6 bench serve: --block-tokens and --steps must be >= 1");
    if (requests < 0 || prefix < 1 || own < 1)
        fail("t6 bench serve: --prefix-requests >= 0, --prefix-tokens and --own-tokens >= 1");
    Model model(cfg);
    model.init_weights(1);

    // 1. Concurrency and decode speed at the budget.
    const size_t per_token = size_t(kv_record_bytes(cfg, ct)) * size_t(cfg.n_layer);
    const long contiguous = long(budget / (double(per_token) * max_context));
    const long pool = long(budget / (double(per_token) * B));
    const long per_seq = (context + B - 1) / B;
    if (pool < per_seq)
        fail("t6 bench serve: the budget holds no sequence of ", context, " tokens");
    const int cap = int(std::min<long>(pool / per_seq + 1, 100000));
    Decoder dec(model, cap, context, ct, WeightType::f32, CachePaging{B, pool});
    int paged = 0;  // admission by blocks: every sequence reserves its context
    while (paged < cap && dec.cache().reserve(paged, context)) paged++;
    std::printf(
        "t6 bench serve: %s, %s cache %s per token, budget %s; machine shared with other "
        "jobs (medians)\n",
        cfg.describe().c_str(), cache_type_name(ct), human_bytes(double(per_token)).c_str(),
        human_bytes(budget).c_str());
    std::printf(
        "concurrent sequences of %d tokens: contiguous %ld (slots of %d tokens), paged %d "
        "(%ld blocks of %d tokens)\n",
        context, contiguous, max_context, paged, pool, B);
    const int fill = context - steps - 1;
    for (int s = 0; s < paged; s++) fill_records(dec.cache(), s, fill, 17u + unsigned(s));
    const double paged_step = decode_step_seconds(dec, paged, steps);
    double contig_step = 0;
    if (contiguous > 0 && contiguous != paged) {
        for (int s = 0; s < paged; s++) dec.cache().set_length(s, fill);
        contig_step = decode_step_seconds(dec, int(std::min<long>(contiguous, paged)), steps);
    } else {
        contig_step = paged_step;
    }
    const int nc = int(std::min<long>(contiguous, paged));
    std::printf(
        "decode: paged %d sequences %.1f tokens/s (%.0f ms/step); contiguous %d sequences "
        "%.1f tokens/s (%.0f ms/step)\n",
        paged, paged / paged_step, paged_step * 1e3, nc, nc > 0 ? nc / contig_step : 0.0,
        contig_step * 1e3);

    // 2. Prefix reuse.
    nlohmann::json pj = nullptr;
    if (requests > 0) {
        const int timed = std::max(1, std::min(requests, p.get_int("unshared-timed")));
        {  // warm-up (thread pools, GEMM back end), untimed
            Decoder w(model, 1, 64, ct);
            std::vector<int32_t> t(32, 1);
            std::vector<float> l(static_cast<size_t>(cfg.vocab_size));
            w.append(0, t.data(), 32, l.data());
        }
        const PrefixRun without = prefix_run(model, ct, PB, requests, prefix, own, false, timed);
        const PrefixRun with = prefix_run(model, ct, PB, requests, prefix, own, true, requests);
        std::printf(
            "prefix reuse: %d requests of %d shared + %d own tokens, blocks of %d: "
            "blocks %ld with reuse (%.2fx one request's %ld), %ld without; prefill %.2f s "
            "with, %.2f s without (%.1fx; %d of %d timed, the rest extrapolated)\n",
            requests, prefix, own, PB, with.blocks, double(with.blocks) / with.blocks_one,
            with.blocks_one, without.blocks, with.prefill_s, without.prefill_s,
            without.prefill_s / with.prefill_s, without.timed, requests);
        pj = {{"requests", requests},
              {"prefix_tokens", prefix},
              {"own_tokens", own},
              {"block_tokens", PB},
              {"blocks_one_request", with.blocks_one},
              {"blocks_with_reuse", with.blocks},
              {"blocks_without_reuse", without.blocks},
              {"blocks_ratio_to_one", double(with.blocks) / with.blocks_one},
              {"prefill_s_with_reuse", with.prefill_s},
              {"prefill_s_without_reuse", without.prefill_s},
              {"without_reuse_timed_requests", without.timed}};
    }
    if (p.has("json")) {
        nlohmann::json out = {{"benchmark", "serve"},
                              {"preset", p.get("preset")},
                              {"cache", cache_type_name(ct)},
                              {"kv_budget_bytes", budget},
                              {"kv_bytes_per_token", per_token},
                              {"context_tokens", context},
                              {"max_context_tokens", max_context},
                              {"block_tokens", B},
                              {"pool_blocks", pool},
                              {"contiguous_sequences", contiguous},
                              {"paged_sequences", paged},
                              {"paged_tokens_per_s", paged / paged_step},
                              {"paged_step_ms", paged_step * 1e3},
                              {"contiguous_tokens_per_s", nc > 0 ? nc / contig_step : 0.0},
                              {"contiguous_step_ms", contig_step * 1e3},
                              {"threads", num_threads()},
                              {"prefix", pj}};
        add_simd_fields(out);
        std::printf("%s\n", out.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
