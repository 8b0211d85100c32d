// End-to-end: `t6 study` compares two kinds on a tiny synthetic dataset in a few steps, writes the
// report folder (report.md, loss.svg, summary.json, logs/), and its numbers match the training
// logs; a rerun trains nothing; a changed plan and a bad kind are one-line errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file_util.h"
#include "test_cli_util.h"
#include "test_train_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace t6;

namespace {

using RunResult = test::CommandResult;
RunResult run_t6(const std::string& args, const test::TempDir&) {
    return test::run_t6(args);
}

std::string write_config(const test::TempDir& tmp) {
    json model = {
        {"attention", "mha"}, {"vocab_size", 64},      {"n_layer", 1},     {"n_embd", 64},
        {"n_head", 4},        {"head_dim", 16},        {"block_size", 32}, {"q_lora_rank", 32},
        {"kv_lora_rank", 24}, {"qk_rope_head_dim", 8}, {"v_head_dim", 16}, {"q_rank", 6},
        {"rank", 2}};
    json cfg = {{"model", model},
                {"data", tmp.file("data")},
                {"batch_size", 2},
                {"seq_len", 16},
                {"max_iters", 4},
                {"eval_interval", 2},
                {"eval_iters", 2},
                {"log_interval", 1},
                {"warmup_iters", 1},
                {"learning_rate", 3e-3},
                {"threads", 1},
                {"study",
                 {{"kinds", {"mha", "t6"}},
                  {"decode_context", 16},
                  {"decode_steps", 2},
                  {"title", "mini study"}}}};
    const std::string path = tmp.file("study.json");
    write_file_atomic(path, cfg.dump(2));
    return path;
}

struct LogFigures {
    double final_val = NAN, best_val = INFINITY;
    long long best_step = -1;
    int evals = 0, trains = 0;
};

LogFigures read_log(const std::string& path) {
    LogFigures f;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        json j = json::parse(line);
        if (j["kind"] == "eval") {
            f.evals++;
            f.final_val = j["val_loss"].get<double>();
            if (j["step"].get<long long>() > 0 && f.final_val < f.best_val) {
                f.best_val = f.final_val;
                f.best_step = j["step"].get<long long>();
            }
        } else if (j["kind"] == "train") {
            f.trains++;
        }
    }
    return f;
}

std::string f4(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return b;
}

size_t count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
    return n;
}

}  // namespace

TEST(CliStudy, MiniatureStudyWritesReportMatchingTheLogsAndDoesNotRetrain) {
    test::TempDir tmp;
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 64, 4000, 1000);
    const std::string cfg = write_config(tmp);
    const std::string out = tmp.file("out");
    RunResult r = run_t6("study --config '" + cfg + "' --out '" + out + "' --json", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("equal parameters:"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("== mha: training"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("== t6: training"), std::string::npos) << r.out;

    const std::string rep = out + "/report";
    for (const char* f :
         {"report.md", "loss.svg", "summary.json", "logs/mha.jsonl", "logs/t6.jsonl"})
        EXPECT_TRUE(fs::exists(rep + "/" + f)) << f;
    const std::string md = read_file_text(rep + "/report.md");
    const json summary = json::parse(read_file_text(rep + "/summary.json"));
    const json last = json::parse(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));
    ASSERT_EQ(summary["kinds"].size(), 2u);
    ASSERT_EQ(last["kinds"].size(), 2u);
    long long params[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const json& k = summary["kinds"][i];
        const std::string kind = k["kind"];
        EXPECT_EQ(kind, i == 0 ? "mha" : "t6");
        // The report's copy of the log is the training log itself.
        EXPECT_EQ(read_file_text(rep + "/logs/" + kind + ".jsonl"),
                  read_file_text(out + "/runs/" + kind + "/metrics.jsonl"));
        const LogFigures f = read_log(rep + "/logs/" + kind + ".jsonl");
        EXPECT_EQ(f.evals, 3);   // steps 0, 2, 4
        EXPECT_EQ(f.trains, 4);  // every step
        EXPECT_DOUBLE_EQ(k["final_val_loss"].get<double>(), f.final_val) << kind;
        EXPECT_DOUBLE_EQ(k["best_val_loss"].get<double>(), f.best_val) << kind;
        EXPECT_EQ(k["best_step"].get<long long>(), f.best_step) << kind;
        EXPECT_NEAR(k["final_val_ppl"].get<double>(), std::exp(f.final_val), 1e-9);
        EXPECT_EQ(k["steps"].get<long long>(), 4);
        EXPECT_EQ(k["tokens"].get<long long>(), 4 * 2 * 16);
        EXPECT_GT(k["train_tokens_per_s"].get<double>(), 0);
        EXPECT_GT(k["decode_tokens_per_s"].get<double>(), 0);
        EXPECT_EQ(k["decode_context"].get<int>(), 16);
        EXPECT_DOUBLE_EQ(last["kinds"][i]["final_val_loss"].get<double>(), f.final_val);
        params[i] = k["params"].get<long long>();
        // The table row: kind, parameters, ..., final and best loss as logged.
        const std::string row_start = "| " + kind + " | ";
        const size_t row = md.find(row_start);
        ASSERT_NE(row, std::string::npos) << md;
        const std::string line = md.substr(row, md.find('\n', row) - row);
        EXPECT_NE(line.find(" " + f4(f.final_val) + " "), std::string::npos) << line;
        EXPECT_NE(line.find(" " + f4(f.best_val) + " "), std::string::npos) << line;
    }
    // Equal parameter count (the head rule), different KV cache.
    EXPECT_LT(std::abs(double(params[1] - params[0])) / double(params[0]), 0.1);
    EXPECT_LT(summary["kinds"][1]["kv_cache_bytes_per_token"].get<long long>(),
              summary["kinds"][0]["kv_cache_bytes_per_token"].get<long long>());
    EXPECT_NE(md.find("T6 against MHA at equal parameters"), std::string::npos);
    EXPECT_NE(md.find("t6 study --config"), std::string::npos);  // the regenerating command

    const std::string svg = read_file_text(rep + "/loss.svg");
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_EQ(count(svg, "<polyline"), 6u);  // 2 kinds x 3 panels
    EXPECT_EQ(count(svg, "<title>mha</title>"), 3u);
    EXPECT_EQ(count(svg, "<title>t6</title>"), 3u);

    // A rerun trains nothing and leaves the logs as they were.
    const std::string log_before = read_file_text(out + "/runs/t6/metrics.jsonl");
    r = run_t6("study --config '" + cfg + "' --out '" + out + "' --json", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("== mha: already done"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("== t6: already done"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("step 1/4"), std::string::npos) << r.out;
    EXPECT_EQ(read_file_text(out + "/runs/t6/metrics.jsonl"), log_before);
    const json again = json::parse(read_file_text(rep + "/summary.json"));
    EXPECT_DOUBLE_EQ(again["kinds"][1]["final_val_loss"].get<double>(),
                     summary["kinds"][1]["final_val_loss"].get<double>());

    // --retime-decode measures the finished kinds' decoding again (training untouched): the
    // report's decode column then holds the new figures of done.json.
    r = run_t6("study --config '" + cfg + "' --out '" + out + "' --retime-decode --json", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("(batch 1; was "), std::string::npos) << r.out;
    EXPECT_EQ(read_file_text(out + "/runs/t6/metrics.jsonl"), log_before);
    const json retimed = json::parse(read_file_text(rep + "/summary.json"));
    for (int i = 0; i < 2; i++) {
        const std::string kind = retimed["kinds"][i]["kind"];
        const json done = json::parse(read_file_text(out + "/runs/" + kind + "/done.json"));
        EXPECT_GT(done["decode_tokens_per_s"].get<double>(), 0.0);
        EXPECT_DOUBLE_EQ(retimed["kinds"][i]["decode_tokens_per_s"].get<double>(),
                         done["decode_tokens_per_s"].get<double>());
        EXPECT_DOUBLE_EQ(retimed["kinds"][i]["final_val_loss"].get<double>(),
                         summary["kinds"][i]["final_val_loss"].get<double>());
    }

    // A study written before a training key existed (here: without "zero1") continues when the
    // key has its default value now.
    json plan = json::parse(read_file_text(out + "/study.json"));
    ASSERT_TRUE(plan["train"].contains("zero1"));
    plan["train"].erase("zero1");
    write_file_atomic(out + "/study.json", plan.dump(2));
    r = run_t6("study --config '" + cfg + "' --out '" + out + "'", tmp);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    r = run_t6("study --config '" + cfg + "' --out '" + out + "' zero1=true", tmp);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("different plan"), std::string::npos) << r.err;

    // Another plan in the same folder is refused.
    r = run_t6("study --config '" + cfg + "' --out '" + out + "' max_iters=6", tmp);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("different plan"), std::string::npos) << r.err;
    EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
}

TEST(CliStudy, BadKindIsAOneLineError) {
    test::TempDir tmp;
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 64, 4000, 1000);
    const std::string cfg = write_config(tmp);
    RunResult r =
        run_t6("study --config '" + cfg + "' --out '" + tmp.file("o") + "' --kinds mha,foo", tmp);
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("unknown kind 'foo'"), std::string::npos) << r.err;
    EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
    EXPECT_FALSE(fs::exists(tmp.file("o/runs")));
}
