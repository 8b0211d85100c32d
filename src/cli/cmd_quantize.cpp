// t6 quantize: writes a quantized copy of a checkpoint (model/quantize_io.h): the decoder's
// linear-layer matrices and the tied embedding in blocks of 32 weights (q8: int8 codes and one
// float32 scale; q4: 4-bit codes, scale and minimum), everything else float32. `t6 generate
// --model FILE` and `t6 eval ppl --model FILE` decode / score it as stored.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "core/error.h"
#include "core/timing.h"
#include "model/checkpoint.h"
#include "model/quantize_io.h"

namespace t6::cli {

int cmd_quantize(int argc, char** argv) {
    ArgParser p("quantize", "CKPT --type q8|q4 --out FILE [options]",
                "Quantizes a checkpoint's linear-layer matrices and tied embedding blockwise (32 "
                "weights per block) into one safetensors file, the scheme and block size in its "
                "metadata.");
    p.positional("CKPT", "checkpoint (.safetensors or folder)");
    p.option("type", "SCHEME", "q8 (int8, one scale per block) or q4 (4-bit, scale and minimum)");
    p.option("out", "FILE", "output .safetensors file (written atomically)");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.positionals().size() != 1) fail("t6 quantize: give exactly one checkpoint (CKPT)");
    if (!p.has("type")) fail("t6 quantize: --type q8|q4 is required");
    if (!p.has("out")) fail("t6 quantize: --out FILE is required");
    const QuantScheme scheme = parse_quant_scheme(p.get("type"), "t6 quantize: --type");
    const std::string in = p.positionals()[0], out = p.get("out");
    if (std::filesystem::is_directory(out)) fail("t6 quantize: --out ", out, " is a folder");
    if (is_quantized_checkpoint(in))
        fail("t6 quantize: ", in, " is already quantized (quantize the float checkpoint)");
    const auto t0 = std::chrono::steady_clock::now();
    auto model = load_model(in);
    std::map<std::string, std::string> meta;
    for (const auto& [k, v] : checkpoint_metadata(in))
        if (k != "format" && k != "format_version" && k != "config" && k != "quantization")
            meta[k] = v;  // e.g. the tokenizer
    const QuantizedWeights q = quantize_model(*model, scheme);
    save_quantized(out, *model, q, meta);
    const double secs = seconds_since(t0);
    const double f32_bytes = 4.0 * double(model->num_params());
    const double out_bytes = double(std::filesystem::file_size(out));
    std::printf(
        "%s: %s, %zu matrices quantized (%s of codes and scales), file %s (f32 %s, "
        "%.2fx smaller) in %.1f s\n",
        out.c_str(), quant_scheme_name(scheme), q.mats.size(),
        human_bytes(double(q.bytes())).c_str(), human_bytes(out_bytes).c_str(),
        human_bytes(f32_bytes).c_str(), f32_bytes / out_bytes, secs);
    if (p.has("json")) {
        nlohmann::json j = {{"out", out},
                            {"scheme", quant_scheme_name(scheme)},
                            {"block_size", kQuantBlock},
                            {"matrices", q.mats.size()},
                            {"quantized_bytes", q.bytes()},
                            {"file_bytes", out_bytes},
                            {"f32_bytes", f32_bytes},
                            {"elapsed_s", secs}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
