// t6 study: every attention kind at equal parameter count, trained identically, evaluated,
// timed, and compared in a report folder (report.md, loss.svg, summary.json, logs/). See
// src/study/study.h.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "study/study.h"
#include "text/data_meta.h"
#include "train/train_config.h"

namespace t6::cli {

namespace {

std::string shell_quote(const std::string& s) {
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-_=./,:+@%") == std::string::npos)
        return s;
    std::string o = "'";
    for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return o + "'";
}

}  // namespace

int cmd_study(int argc, char** argv) {
    ArgParser p("study", "[--config FILE] [--preset NAME | --model PATH] [options] [key=value ...]",
                "Reproduces the paper's comparison on your data and budget: builds every attention "
                "kind at MHA's\nparameter count (heads per kind as the paper's Table 10; the rule "
                "and the head counts are printed),\ntrains each with the same data order, schedule "
                "and seed, evaluates it on the validation split,\ntimes its decoding, and writes a "
                "report folder: report.md (the table), loss.svg (training and\nvalidation loss "
                "against tokens), summary.json and logs/<kind>.jsonl. Rerunning resumes: a "
                "finished\nkind is not retrained and a half-trained one continues from its latest "
                "checkpoint.\nThe model (config \"model\", --preset or --model) gives the shared "
                "shape: layers, n_embd, d_h,\nTPA ranks, MLA latents. key=value arguments set "
                "training keys (t6 train --help), model keys\n(t6 info --help), or tokens=N: the "
                "token budget (max_iters = N / tokens per step, rounded up).");
    p.option("config", "FILE",
             "JSON: training keys, \"model\", and \"study\": {\"kinds\", \"title\", "
             "\"decode_context\", \"decode_steps\", \"report_dir\"}");
    add_model_options(p);
    p.option("out", "DIR", "study folder: runs/<kind>/ (checkpoints, logs) and study.json",
             "out_dir of the config, else out/study");
    p.option("report", "DIR", "report folder", "OUT/report");
    p.option("kinds", "LIST", "kinds to compare (mha,mqa,gqa,mla,t6,t6-kvonly)", "all six");
    p.option("title", "TEXT", "report title", "t6 study");
    p.option("decode-context", "N", "tokens in the cache when decoding is timed", "1024");
    p.option("decode-steps", "N", "timed decoding steps (median reported)", "32");
    p.flag("retime-decode",
           "measure the decoding speed of kinds already trained again (after an engine upgrade)");
    p.flag("json", "print one JSON object (the summary) as the last line");
    p.epilog(
        "examples:\n"
        "  t6 prepare input.txt --tokenizer char --out data/shakespeare_char   (tinyshakespeare; "
        "the test data directory ($T6_SHARED) has it under data/)\n"
        "  t6 study --config configs/study-shakespeare-char.json\n"
        "  t6 study --config configs/study-shakespeare-char.json --kinds mha,t6 --out out/quick "
        "max_iters=200\n"
        "  t6 study --preset tiny-mha data=data/fortunes tokens=2e6 --out out/fortunes");
    p.parse(argc, argv, 0);

    study::StudyPlan plan;
    plan.command = "t6 study";
    for (int i = 0; i < argc; i++)  // the command that regenerates the report
        if (std::string(argv[i]) != "--retime-decode") plan.command += " " + shell_quote(argv[i]);
    TrainSetup& setup = plan.base;
    bool out_given = false, vocab_given = false;
    if (p.has("config")) {
        const std::string path = p.get("config");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(read_file_text(path));
        } catch (const nlohmann::json::parse_error& e) {
            fail(path, ": not valid JSON (byte ", e.byte, ")");
        }
        if (!j.is_object()) fail(path, ": a study config must be a JSON object");
        if (j.contains("study")) {
            study::apply_study_json(plan, j["study"], path);
            j.erase("study");
        }
        out_given = j.contains("out_dir");
        vocab_given =
            j.contains("model") && j["model"].is_object() && j["model"].contains("vocab_size");
        apply_train_config_json(setup, j, path);
    }
    if (p.has("preset") && p.has("model")) fail("t6 study: give --preset or --model, not both");
    if (p.has("preset")) {
        // The size's shape, with the latent sizes of its MLA preset (the other presets keep
        // MLA's defaults, sized for the paper's models).
        const std::string name = p.get("preset");
        setup.model = preset_config(name);
        const ModelConfig mla = preset_config(name.substr(0, name.find('-')) + "-mla");
        setup.model.q_lora_rank = mla.q_lora_rank;
        setup.model.kv_lora_rank = mla.kv_lora_rank;
        setup.model.qk_rope_head_dim = mla.qk_rope_head_dim;
        setup.model.v_head_dim = mla.v_head_dim;
        setup.model_source = name;
        setup.model_given = true;
    } else if (p.has("model")) {
        setup.model = resolve_model_config(p.get("model"));
        setup.model_source = p.get("model");
        setup.model_given = true;
        vocab_given = true;
    }
    if (!setup.model_given)
        fail("t6 study: no model given (--preset NAME, --model PATH, or \"model\" in the config)");
    double budget = -1;
    for (const auto& a : p.positionals()) {
        const auto eq = a.find('=');
        if (eq == std::string::npos)
            fail("t6 study: unexpected argument '", a, "' (expected key=value)");
        const std::string key = a.substr(0, eq);
        if (key == "tokens") {
            char* end = nullptr;
            budget = std::strtod(a.c_str() + eq + 1, &end);
            if (!end || *end || !(budget > 0))
                fail("t6 study: '", a, "': the token budget must be a positive number");
            continue;
        }
        if (key == "out_dir") out_given = true;
        if (key == "vocab_size") vocab_given = true;
        apply_train_override(setup, a, true);
    }
    if (p.has("out"))
        setup.train.out_dir = p.get("out");
    else if (!out_given)
        setup.train.out_dir = "out/study";
    if (p.has("report")) plan.report_dir = p.get("report");
    if (p.has("kinds")) plan.kinds = split_list(p.get("kinds"));
    if (p.has("title")) plan.title = p.get("title");
    if (p.has("decode-context")) plan.decode_context = p.get_int("decode-context");
    if (p.has("decode-steps")) plan.decode_steps = p.get_int("decode-steps");
    if (budget > 0) setup.train.max_iters = int(std::ceil(budget / double(plan.tokens_per_step())));
    // The vocabulary of the prepared data, unless the model states its own.
    if (!vocab_given && !setup.train.data.empty()) {
        const auto m = read_data_meta(setup.train.data);  // null without one
        if (!m.is_null()) {
            if (!m.contains("vocab_size") || !m["vocab_size"].is_number_integer())
                fail(setup.train.data, "/meta.json: no integer vocab_size");
            setup.model.vocab_size = m["vocab_size"].get<int>();
        }
    }

    const study::StudyResult r = study::run_study(plan, stdout, -1, p.has("retime-decode"));
    std::printf("\n%-10s %10s %7s %12s %10s %10s %10s %12s %12s\n", "kind", "params", "heads",
                "KV B/token", "final val", "best val", "best ppl", "train tok/s", "decode tok/s");
    for (const auto& k : r.kinds)
        std::printf("%-10s %10lld %7d %12lld %10.4f %10.4f %10.3f %12.0f %12.1f\n", k.kind.c_str(),
                    k.params, k.model.n_head, k.kv_bytes_per_token, k.final_val_loss,
                    k.best_val_loss, std::exp(k.best_val_loss), k.train_tokens_per_s,
                    k.decode_tokens_per_s);
    std::printf("study done in %.1f s (%zu kinds trained, %zu already done); report %s/report.md\n",
                r.wall_s, r.trained.size(), r.skipped.size(), r.report_dir.c_str());
    if (p.has("json")) std::printf("%s\n", r.to_json().dump().c_str());
    return 0;
}

}  // namespace t6::cli
