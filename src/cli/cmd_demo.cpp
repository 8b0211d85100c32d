// t6 demo: a quick look without data: the preset table and a timed forward+backward pass of the
// tiny T6 model on an embedded text. (The README's first command trains: scripts/demo.sh.)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "core/timing.h"
#include "kernels/gemm.h"
#include "model/attn/kinds.h"
#include "model/model.h"
#include "model/model_stats.h"

namespace t6::cli {

namespace {

const char* kEmbeddedText =
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. First "
    "Citizen: You are all resolved rather to die than to famish? All: Resolved. resolved.";

}  // namespace

int cmd_demo(int argc, char** argv) {
    ArgParser p("demo", "[options]",
                "Shows the model presets and runs the tiny T6 model (random weights) over an "
                "embedded text: loss, forward+backward time.");
    p.parse(argc, argv, 0);
    std::printf("== t6 presets (parameters, KV cache numbers per token and layer)\n");
    for (const char* size : {"tiny", "small"})
        for (const AttentionKindInfo& kind : attention_kinds()) {
            const std::string name = std::string(size) + "-" + kind.preset_suffix;
            ModelConfig c = preset_config(name);
            ModelStats s = model_stats(c);
            std::printf("  %-16s %14s params  %5zu cached numbers/token/layer\n", name.c_str(),
                        with_commas((long long)s.params_total).c_str(),
                        s.kv_numbers_per_token_per_layer);
        }
    ModelConfig cfg = preset_config("tiny-t6");
    Model model(cfg);
    model.init_weights(0);
    std::string text = kEmbeddedText;
    std::vector<int32_t> x, y;  // byte-level tokens of the embedded text
    for (size_t i = 0; i + 1 < text.size(); i++) {
        x.push_back((unsigned char)text[i]);
        y.push_back((unsigned char)text[i + 1]);
    }
    const int T = int(x.size());
    std::printf("\n== tiny-t6 (%s), GEMM %s\n", cfg.describe().c_str(), gemm_kernel_name().c_str());
    auto t0 = std::chrono::steady_clock::now();
    float loss = model.forward_backward(x.data(), y.data(), 1, T);
    double s = seconds_since(t0);
    std::printf(
        "forward+backward over %d byte tokens: loss %.4f (ln V = %.4f at random init), "
        "%.1f ms\n",
        T, loss, std::log(double(cfg.vocab_size)), 1e3 * s);
    std::printf(
        "Train a model with `t6 train` (the README's demo: scripts/demo.sh), then "
        "`t6 generate --model CHECKPOINT`.\n");
    return 0;
}

}  // namespace t6::cli
