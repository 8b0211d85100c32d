// t6 info: what a model costs: parameters per component, FLOPs per token, KV cache per token.
// t6 info --system: the CPU, its SIMD features, the dispatch targets, and the kernel each kernel
// family runs.
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/int8_linear.h"
#include "model/checkpoint.h"
#include "model/model_stats.h"

namespace t6::cli {

namespace {

nlohmann::json info_json(const std::string& name, const ModelConfig& c, int T) {
    ModelStats s = model_stats(c);
    double f = forward_flops_per_token(c, T);
    nlohmann::json j = {
        {"model", name},
        {"attention", attention_kind_name(c.attention)},
        {"config", c.to_json()},
        {"params_total", s.params_total},
        {"params_embedding", s.params_by_component["embedding"]},
        {"params_attention", s.params_by_component["attention"]},
        {"params_mlp", s.params_by_component["mlp"]},
        {"params_attention_per_layer", s.params_by_component["attention"] / c.n_layer},
        {"seq_len", T},
        {"forward_flops_per_token", f},
        {"train_flops_per_token", 3 * f},
        {"kv_numbers_per_token_per_layer", s.kv_numbers_per_token_per_layer},
        {"kv_bytes_per_token_per_layer_f32", 4 * s.kv_numbers_per_token_per_layer},
        {"kv_bytes_per_token_f32", 4 * s.kv_numbers_per_token_per_layer * c.n_layer},
        {"kv_bytes_per_token_bf16", 2 * s.kv_numbers_per_token_per_layer * c.n_layer}};
    return j;
}

void print_info(const std::string& name, const ModelConfig& c, int T) {
    ModelStats s = model_stats(c);
    auto comp = [&](const char* k) { return (long long)s.params_by_component[k]; };
    std::printf("model      %s\n", name.c_str());
    std::printf("config     %s\n", c.describe().c_str());
    std::printf("parameters\n");
    std::printf("  embedding (tied with lm_head) %15s\n", with_commas(comp("embedding")).c_str());
    std::printf("  attention                     %15s  (%s per layer)\n",
                with_commas(comp("attention")).c_str(),
                with_commas(comp("attention") / c.n_layer).c_str());
    std::printf("  mlp                           %15s  (%s per layer)\n",
                with_commas(comp("mlp")).c_str(), with_commas(comp("mlp") / c.n_layer).c_str());
    std::printf("  total                         %15s  (%.1fM)\n",
                with_commas((long long)s.params_total).c_str(), s.params_total / 1e6);
    double f = forward_flops_per_token(c, T);
    std::printf("FLOPs per token at T=%d: forward %.3f GFLOP, training step %.3f GFLOP\n", T,
                f / 1e9, 3 * f / 1e9);
    size_t kv = s.kv_numbers_per_token_per_layer;
    std::printf(
        "KV cache per token: %zu numbers per layer = %s (f32) / %s (bf16); all %d layers "
        "%s (f32)\n",
        kv, human_bytes(4.0 * kv).c_str(), human_bytes(2.0 * kv).c_str(), c.n_layer,
        human_bytes(4.0 * kv * c.n_layer).c_str());
}

void print_preset_table(int T) {
    std::printf("%-16s %14s %6s %8s %22s %16s\n", "preset", "parameters", "heads", "kv_heads",
                "kv numbers/token/layer", "fwd GFLOP/token");
    for (const auto& name : preset_names()) {
        ModelConfig c = preset_config(name);
        ModelStats s = model_stats(c);
        std::printf("%-16s %14s %6d %8d %22zu %16.3f\n", name.c_str(),
                    with_commas((long long)s.params_total).c_str(), c.n_head, c.kv_heads(),
                    s.kv_numbers_per_token_per_layer,
                    forward_flops_per_token(c, std::min(T, c.block_size)) / 1e9);
    }
}

// The machine and the kernels that run on it (t6 info --system).
int print_system(bool json) {
    const SimdTarget t = simd_target();  // a bad T6_SIMD fails here, with one line
    const SimdTarget best = simd_cpu_best();
    const char* env = std::getenv("T6_SIMD");
    const std::string env_value = env != nullptr ? env : "";
    std::vector<std::string> avail;
    for (SimdTarget a : simd_available_targets()) avail.push_back(simd_target_name(a));
    std::string avail_s;
    for (const auto& a : avail) avail_s += (avail_s.empty() ? "" : " ") + a;
    const bool capped = t < best;
    const std::string tpa_f32(flash_tpa_kernel_name(false)), tpa_bf16(flash_tpa_kernel_name(true));
    // The paper presets' latent (d_c = 256): the native bf16 MLA path needs a multiple of 32.
    const std::string mla_bf16(flash_mla_kernel_name(true, 256));
    const std::string gemm_f32 = gemm_kernel_name(), gemm_bf16 = gemm_bf16_kernel_name();
    const std::string hwy = simd_highway_target_name();
    const std::string int8 = int8_kernel_name();
    const CpuSignature sig = cpu_signature();
    std::printf("cpu                %s\n", cpu_model_name().c_str());
    if (!sig.vendor.empty())
        std::printf("cpu signature      %s family %d model %d\n", sig.vendor.c_str(), sig.family,
                    sig.model);
    std::printf("simd features      %s\n", cpu_simd_features().c_str());
    std::printf("simd targets       %s (best: %s)\n", avail_s.c_str(), simd_target_name(best));
    std::printf(
        "target in force    %s%s\n", simd_target_name(t),
        capped
            ? (" (capped by " +
               (env_value.empty() ? std::string("set_simd_target") : "T6_SIMD=" + env_value) + ")")
                  .c_str()
            : "");
    std::printf("threads            %d (OpenMP wait policy %s)\n", num_threads(),
                omp_wait_policy().c_str());
    std::printf("kernels\n");
    std::printf("  Highway kernels  %s\n", hwy.c_str());
    std::printf("  FlashTPA         f32 cache: %s; bf16 cache: %s\n", tpa_f32.c_str(),
                tpa_bf16.c_str());
    std::printf("  absorbed MLA     bf16 latent (d_c a multiple of 32): %s\n", mla_bf16.c_str());
    std::printf("  f32 GEMM         %s\n", gemm_f32.c_str());
    std::printf("  bf16 GEMM        %s\n", gemm_bf16.c_str());
    std::printf("  int8 GEMV        %s (q8a8 / q4a8 weights)\n", int8.c_str());
    if (json) {
        nlohmann::json j = {
            {"cpu", cpu_model_name()},
            {"cpu_simd_features", cpu_simd_features()},
            {"cpu_vendor", sig.vendor},
            {"cpu_family", sig.family},
            {"cpu_model", sig.model},
            {"simd_available_targets", avail},
            {"simd_cpu_best", simd_target_name(best)},
            {"simd_target", simd_target_name(t)},
            {"simd_capped", capped},
            {"t6_simd_env", env != nullptr ? nlohmann::json(env_value) : nlohmann::json(nullptr)},
            {"simd_native_bf16", simd_native_bf16()},
            // Whether a bf16 cache is multiplied with vdpbf16ps (T6_BF16_DOT, core/simd.h).
            {"bf16_dot_decode", simd_bf16_dot_decode()},
            {"simd_highway_target", hwy},
            {"flash_tpa_kernel_f32", tpa_f32},
            {"flash_tpa_kernel_bf16", tpa_bf16},
            {"flash_mla_kernel_bf16", mla_bf16},
            {"gemm_kernel", gemm_f32},
            {"gemm_bf16_kernel", gemm_bf16},
            {"int8_gemv_kernel", int8},
            {"threads", num_threads()},
            {"omp_wait_policy", omp_wait_policy()}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace

int cmd_info(int argc, char** argv) {
    ArgParser p("info", "[PRESET|CONFIG|CHECKPOINT] [key=value ...] [options]",
                "Parameters per component and in total, FLOPs per token, and KV cache bytes per "
                "token of a model.");
    add_model_options(p);
    p.option("seq-len", "T", "sequence length for the attention FLOPs", "the model's block_size");
    p.flag("presets", "list every preset in one table");
    p.flag("system", "the CPU, its SIMD features and targets, and the kernel each family runs");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.has("system")) return print_system(p.has("json"));
    if (p.has("presets")) {
        int T = p.has("seq-len") ? p.get_int("seq-len") : 1024;
        if (p.has("json")) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& n : preset_names()) arr.push_back(info_json(n, preset_config(n), T));
            std::printf("%s\n", nlohmann::json{{"presets", arr}}.dump().c_str());
        } else {
            print_preset_table(T);
        }
        return 0;
    }
    ModelChoice m = resolve_model_choice(p, "info");
    // A checkpoint is loaded as generate and eval load it (checksums, tensor names and shapes,
    // finite weights), so that info does not vouch for a file they reject.
    if (m.is_checkpoint) (void)load_model(m.source);
    int T = p.has("seq-len") ? p.get_int("seq-len") : m.config.block_size;
    if (T <= 0) fail("t6 info: --seq-len must be positive");
    if (p.has("json")) {
        std::printf("%s\n", info_json(m.source, m.config, T).dump().c_str());
    } else {
        print_info(m.source, m.config, T);
    }
    return 0;
}

}  // namespace t6::cli
