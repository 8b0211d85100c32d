// t6 convert: an MHA/GQA/MQA checkpoint -> a TPA (T6) checkpoint (model/convert_tpa.h,
// docs/convert-to-tpa.md). The Q/K/V projections of every layer are fitted as TPA factors on
// calibration activations (Tucker initialisation + alternating least squares); everything else
// is copied. `t6 train init_from=OUT` then recovers the converted model (optionally distilling
// from the source: distill_from=CKPT).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/tokenizer_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/timing.h"
#include "model/attn/kinds.h"
#include "model/checkpoint.h"
#include "model/convert_tpa.h"
#include "model/model_stats.h"
#include "text/data_meta.h"

namespace fs = std::filesystem;

namespace t6::cli {

namespace {

// A TPA kind by its preset suffix or config name (model/attn/kinds.h), '-' read as '_'.
AttentionKind parse_target(const std::string& s) {
    std::string name = s;
    std::replace(name.begin(), name.end(), '-', '_');
    const AttentionKindInfo* k = find_kind(s);
    if (!k) k = find_kind(name);
    if (k && (k->kind == AttentionKind::tpa || k->kind == AttentionKind::tpa_kvonly))
        return k->kind;
    fail("t6 convert: --to '", s, "' is not a conversion target (tpa or tpa-kvonly)");
}

// Raw little-endian token ids (uint16, or uint32 when `u32`).
std::vector<int32_t> read_raw_tokens(const std::string& path, bool u32, size_t max_tokens) {
    const auto bytes = read_file_bytes(path);
    const size_t w = u32 ? 4 : 2, n = std::min(bytes.size() / w, max_tokens);
    if (bytes.size() % w != 0)
        fail("t6 convert: --calib ", path, " is not a whole number of ", w, "-byte token ids");
    std::vector<int32_t> out(n);
    for (size_t i = 0; i < n; i++) {
        uint32_t v = 0;
        for (size_t b = 0; b < w; b++) v |= uint32_t(bytes[i * w + b]) << (8 * b);
        out[i] = int32_t(v);
    }
    return out;
}

// --calib: a `t6 prepare` folder (its train.bin: calibration never sees validation data), a raw
// .bin token file, or a text file encoded with the checkpoint's tokenizer.
std::vector<int32_t> calibration_tokens(const std::string& calib, const std::string& ckpt,
                                        int vocab, size_t max_tokens) {
    if (!fs::exists(calib)) fail("t6 convert: --calib ", calib, " does not exist");
    std::vector<int32_t> ids;
    if (fs::is_directory(calib)) {
        const fs::path val = fs::path(calib) / "train.bin";
        if (!fs::exists(val))
            fail("t6 convert: --calib folder ", calib, " has no train.bin (a t6 prepare folder)");
        bool u32 = vocab > 65536;
        const auto j = read_data_meta(calib);  // null without one
        if (j.is_object() && j.contains("dtype")) u32 = j["dtype"] == "uint32";
        ids = read_raw_tokens(val.string(), u32, max_tokens);
    } else if (fs::path(calib).extension() == ".bin") {
        ids = read_raw_tokens(calib, vocab > 65536, max_tokens);
    } else {
        auto tok = resolve_tokenizer("", ckpt, vocab);
        ids = tok->encode(read_file_text(calib));
        if (ids.size() > max_tokens) ids.resize(max_tokens);
    }
    for (size_t i = 0; i < ids.size(); i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            fail("t6 convert: --calib ", calib, ": token id ", ids[i], " at position ", i,
                 " is outside the model's vocabulary [0, ", vocab, ")");
    return ids;
}

}  // namespace

int cmd_convert_curves(int argc, char** argv);  // cmd_convert_curves.cpp

int cmd_convert(int argc, char** argv) {
    if (argc >= 1 && std::string(argv[0]) == "curves")
        return cmd_convert_curves(argc - 1, argv + 1);
    ArgParser p("convert", "CKPT --to tpa --out FILE [options]",
                "Converts an MHA/GQA/MQA checkpoint to Tensor Product Attention: each layer's "
                "Q/K/V projections are fitted as TPA factors on calibration activations (Tucker "
                "initialisation, then alternating least squares); embeddings, output projection, "
                "MLP and norms are copied. Prints each layer's relative reconstruction error of Q, "
                "K and V. Recover with `t6 train init_from=FILE` (docs/convert-to-tpa.md).");
    p.positional("CKPT", "source checkpoint (mha, gqa or mqa; .safetensors or folder)");
    p.epilog("t6 convert curves --help: plot recovery runs against the source model's loss.");
    p.option("to", "KIND",
             "tpa (T6: factorized Q, K, V) or tpa-kvonly (keeps the query projection)", "tpa");
    p.option("rank-q", "R", "R_Q, query rank (tpa)", "6");
    p.option("rank-k", "R", "R_K, key rank", "2");
    p.option("rank-v", "R", "R_V, value rank", "2");
    p.option(
        "calib", "PATH",
        "calibration data: a t6 prepare folder (its train.bin), a .bin token file, or a text file "
        "(checkpoint's tokenizer); without it the normed token embeddings are used (weaker)");
    p.option("calib-tokens", "N", "calibration tokens", "8192");
    p.option("calib-seq", "N", "calibration sequence length (0: min(block_size, 128))", "0");
    p.option("init", "KIND", "tucker (HOSVD subspace) or random", "tucker");
    p.option("als-iters", "N", "alternating least squares sweeps (0: initialisation only)", "8");
    p.option("seed", "N", "seed of the random initialisation", "1234");
    p.option("out", "FILE", "output .safetensors checkpoint (written atomically)");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.positionals().size() != 1) fail("t6 convert: give exactly one checkpoint (CKPT)");
    if (!p.has("out")) fail("t6 convert: --out FILE is required");
    const std::string in = p.positionals()[0], out = p.get("out");
    if (fs::is_directory(out)) fail("t6 convert: --out ", out, " is a folder (give a file)");
    ConvertOptions opt;
    opt.to = parse_target(p.get("to"));
    opt.q_rank = p.get_int("rank-q");
    opt.k_rank = p.get_int("rank-k");
    opt.v_rank = p.get_int("rank-v");
    opt.init = p.get("init");
    opt.als_iters = p.get_int("als-iters");
    opt.seed = uint64_t(p.get_int64("seed"));
    const long long calib_tokens = p.get_int64("calib-tokens");
    if (calib_tokens < 1) fail("t6 convert: --calib-tokens must be >= 1");
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig sc = checkpoint_config(in);
    const ModelConfig dc = converted_config(sc, opt, "t6 convert");  // checks before any work
    int seq = p.get_int("calib-seq");
    if (seq < 0 || seq > sc.block_size)
        fail("t6 convert: --calib-seq ", seq, " is out of range [0, ", sc.block_size, "]");
    if (seq == 0) seq = std::min(sc.block_size, 128);
    std::vector<int32_t> tokens;
    if (p.has("calib")) {
        tokens = calibration_tokens(p.get("calib"), in, sc.vocab_size, size_t(calib_tokens));
        if (tokens.size() < size_t(seq))
            fail("t6 convert: --calib ", p.get("calib"), " has ", tokens.size(),
                 " tokens, fewer than one sequence of ", seq, " (--calib-seq)");
        tokens.resize(tokens.size() / size_t(seq) * size_t(seq));
    }
    auto src = load_model(in);
    std::vector<LayerFit> fits;
    auto dst = convert_to_tpa(*src, tokens, seq, opt, fits);
    std::map<std::string, std::string> meta;
    for (const auto& [k, v] : checkpoint_metadata(in))
        if (k != "format" && k != "format_version" && k != "config") meta[k] = v;  // tokenizer
    meta["converted_from"] = attention_kind_name(sc.attention);
    save_weights(out, *dst, meta);
    const double secs = seconds_since(t0);

    const size_t src_kv = model_stats(sc).kv_numbers_per_token_per_layer * size_t(sc.n_layer);
    const size_t dst_kv = model_stats(dc).kv_numbers_per_token_per_layer * size_t(dc.n_layer);
    std::printf("%s -> %s\n", sc.describe().c_str(), dc.describe().c_str());
    std::printf("calibration: %s (%zu tokens), init %s, %d ALS sweeps\n",
                p.has("calib") ? p.get("calib").c_str() : "token embeddings",
                tokens.empty() ? size_t(sc.vocab_size) : tokens.size(), opt.init.c_str(),
                opt.als_iters);
    std::printf("relative reconstruction error (init -> fitted):\n");
    double mq = 0, mk = 0, mv = 0;
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& f : fits) {
        if (dc.attention == AttentionKind::tpa)
            std::printf("  layer %d: Q %.4f -> %.4f  K %.4f -> %.4f  V %.4f -> %.4f\n", f.layer,
                        f.q.init_error, f.q.final_error, f.k.init_error, f.k.final_error,
                        f.v.init_error, f.v.final_error);
        else
            std::printf("  layer %d: Q copied  K %.4f -> %.4f  V %.4f -> %.4f\n", f.layer,
                        f.k.init_error, f.k.final_error, f.v.init_error, f.v.final_error);
        mq += f.q.final_error / double(fits.size());
        mk += f.k.final_error / double(fits.size());
        mv += f.v.final_error / double(fits.size());
        layers.push_back({{"layer", f.layer},
                          {"q_rel_error_init", f.q.init_error},
                          {"q_rel_error", f.q.final_error},
                          {"k_rel_error_init", f.k.init_error},
                          {"k_rel_error", f.k.final_error},
                          {"v_rel_error_init", f.v.init_error},
                          {"v_rel_error", f.v.final_error},
                          {"k_error_history", f.k.history}});
    }
    std::printf("cache per token: %zu -> %zu numbers (%s -> %s in float32); wrote %s in %.1f s\n",
                src_kv, dst_kv, human_bytes(4.0 * double(src_kv)).c_str(),
                human_bytes(4.0 * double(dst_kv)).c_str(), out.c_str(), secs);
    if (p.has("json")) {
        nlohmann::json j = {{"out", out},
                            {"from", attention_kind_name(sc.attention)},
                            {"to", attention_kind_name(dc.attention)},
                            {"q_rank", dc.attention == AttentionKind::tpa ? dc.q_rank : 0},
                            {"k_rank", dc.k_rank},
                            {"v_rank", dc.v_rank},
                            {"init", opt.init},
                            {"als_iters", opt.als_iters},
                            {"calib_tokens", tokens.size()},
                            {"layers", layers},
                            {"mean_q_rel_error", mq},
                            {"mean_k_rel_error", mk},
                            {"mean_v_rel_error", mv},
                            {"src_cache_bytes_per_token_f32", 4 * src_kv},
                            {"cache_bytes_per_token_f32", 4 * dst_kv},
                            {"src_params", src->num_params()},
                            {"params", dst->num_params()},
                            {"elapsed_s", secs}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
