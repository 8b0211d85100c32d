// t6 kv: the memory planner. KV cache bytes per token (per layer and in total) and the longest
// context that fits a memory budget, for every attention kind side by side at equal parameters.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "infer/decoder.h"
#include "model/attn/kinds.h"
#include "model/equal_params.h"
#include "model/kv_cache.h"
#include "model/model_stats.h"
#include "model/quantize.h"

namespace t6::cli {

int cmd_kv(int argc, char** argv) {
    ArgParser p("kv", "[PRESET|CONFIG|CHECKPOINT] [options]",
                "KV cache bytes per token and the longest context a memory budget holds, for "
                "every attention kind at equal parameter count (the preset's size, or the model's "
                "shape with each kind's head count chosen to match MHA's attention parameters).");
    add_model_options(p);
    p.option("budget", "BYTES", "memory for the KV cache, e.g. 2GiB", "8GiB");
    p.option("cache", "TYPE", "element type f32, bf16 or q8 (int8 rows, scales included)", "f32");
    p.option("batch", "N", "concurrent sequences sharing the budget", "1");
    p.option("weights", "TYPE",
             "decoding weights f32, bf16, q8, q4, q8a8 or q4a8 (bytes as stored, block scales "
             "included): "
             "their size and the context from which the cache outweighs them",
             "f32");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    ModelChoice m = resolve_model_choice(p, "kv");
    const double budget = parse_bytes(p.get("budget"), "--budget");
    const CacheType ct = parse_cache_type(p.get("cache"));
    const int batch = p.get_int("batch");
    if (batch <= 0) fail("t6 kv: --batch must be positive");
    const WeightType wt = parse_weight_type(p.get("weights"));
    // Bytes a decoding step streams for the weights of config c.
    auto weight_bytes = [&](const ModelConfig& c) {
        if (is_quantized(wt)) return quantized_weight_bytes(c, quant_scheme_of(wt));
        return double(model_stats(c).params_total) * (wt == WeightType::f32 ? 4.0 : 2.0);
    };

    std::vector<std::pair<std::string, ModelConfig>> rows;
    auto dash = m.source.find('-');
    if (is_preset(m.source)) {
        std::string size = m.source.substr(0, dash);
        for (const auto& k : attention_kinds())
            rows.push_back(
                {size + "-" + k.preset_suffix, preset_config(size + "-" + k.preset_suffix)});
    } else {
        rows.push_back({m.source, m.config});
        for (const auto& v : equal_param_variants(m.config))
            rows.push_back({"equal-params " + std::string(kind_info(v).preset_suffix), v});
    }
    double mha_bytes = 0;
    for (const auto& [n, c] : rows)
        if (c.attention == AttentionKind::mha) mha_bytes = double(kv_record_bytes(c, ct));

    std::printf("KV cache (%s), budget %s, %d sequence%s, weights %s\n", cache_type_name(ct),
                human_bytes(budget).c_str(), batch, batch > 1 ? "s" : "", weight_type_name(wt));
    std::printf("%-24s %14s %6s %12s %14s %12s %14s %9s %11s %12s\n", "model", "parameters",
                "heads", "numbers/tok", "bytes/tok/layer", "bytes/token", "max context", "vs MHA",
                "weights", "cache>wts at");
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& [name, c] : rows) {
        const long rec = kv_record_numbers(c);
        const double per_layer = double(kv_record_bytes(c, ct)), per_token = per_layer * c.n_layer;
        const long long max_ctx = (long long)(budget / (per_token * batch));
        const double vs = mha_bytes > 0 ? mha_bytes / per_layer : 0;
        const size_t params = model_stats(c).params_total;
        // The context from which the cache of `batch` sequences outweighs the weights.
        const double wbytes = weight_bytes(c);
        const long long cross = (long long)std::ceil(wbytes / (per_token * batch));
        std::printf("%-24s %14s %6d %12ld %14.0f %12s %14s %8.2fx %11s %12s\n", name.c_str(),
                    with_commas((long long)params).c_str(), c.n_head, rec, per_layer,
                    human_bytes(per_token).c_str(), with_commas(max_ctx).c_str(), vs,
                    human_bytes(wbytes).c_str(), with_commas(cross).c_str());
        arr.push_back({{"model", name},
                       {"attention", attention_kind_name(c.attention)},
                       {"params", params},
                       {"n_head", c.n_head},
                       {"numbers_per_token_per_layer", rec},
                       {"bytes_per_token_per_layer", per_layer},
                       {"bytes_per_token", per_token},
                       {"max_context_tokens", max_ctx},
                       {"cache_reduction_vs_mha", vs},
                       {"weight_bytes", wbytes},
                       {"cache_exceeds_weights_from_tokens", cross}});
    }
    if (p.has("json"))
        std::printf("%s\n", nlohmann::json({{"budget_bytes", budget},
                                            {"cache_type", cache_type_name(ct)},
                                            {"batch", batch},
                                            {"weights", weight_type_name(wt)},
                                            {"models", arr}})
                                .dump()
                                .c_str());
    return 0;
}

}  // namespace t6::cli
