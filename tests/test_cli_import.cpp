// End-to-end test of tools/import_official.py on what the official train_adam.py writes: a folder
// with config.json ("model_type": "gpt2"), pytorch_model.bin, optimizer.pt and checkpoint-<iter>/,
// made with Debian's python3-torch from the conformance weights (tests/official_import_cases.py,
// one python run for every case), imported with no flags for every official kind; the imported
// model must give the official logits and loss. Also: nanoGPT's ckpt.pt, bad inputs (one-line
// errors, nothing written), and the t6 commands a user runs next (info, eval ppl --format,
// generate --print-ids). Needs python3-torch and $T6_SHARED/conformance; skips otherwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_cli_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

using test::last_json;

const std::vector<std::string> kModels = {"t6",        "t6_rank1",  "t6_kvonly", "llama_mha",
                                          "llama_gqa", "llama_mqa", "llama_mla"};

std::string q(const std::string& s) {
    return "'" + s + "'";
}

// Runs the case generator once for the whole test program (python + torch start-up is slow).
struct Cases {
    std::string skip;  // why the cases could not be made, or empty
    test::TempDir dir;
    nlohmann::json results;
};

Cases& cases() {
    static Cases c = [] {
        Cases c;
        const std::string shared = test::shared_dir();
        if (shared.empty() || !fs::exists(shared + "/conformance/t6")) {
            c.skip = "$T6_SHARED/conformance not found (set T6_SHARED to the shared folder)";
            return c;
        }
        const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        if (test::run_command(py + " -c 'import torch'").status != 0) {
            c.skip = "python3-torch is not installed (scripts/install-deps.sh import)";
            return c;
        }
        std::string cmd = py + " " +
                          q(std::string(T6_SOURCE_DIR) + "/tests/official_import_cases.py") + " " +
                          q(shared + "/conformance") + " " + q(c.dir.path()) + " " +
                          q(std::string(T6_SOURCE_DIR) + "/tools/import_official.py");
        for (const auto& m : kModels) cmd += " " + m;
        test::CommandResult r = test::run_command(cmd);
        if (r.status != 0) {
            c.skip = "the case generator failed: " + r.err;
            return c;
        }
        c.results = nlohmann::json::parse(read_file_text(c.dir.file("results.json")));
        return c;
    }();
    return c;
}

#define T6_NEED_CASES()                                                                  \
    Cases& cs = cases();                                                                 \
    if (!cs.skip.empty()) {                                                              \
        if (cs.skip.rfind("the case generator failed", 0) == 0) GTEST_FAIL() << cs.skip; \
        T6_SKIP_UNLESS_CI(cs.skip);                                                      \
    }                                                                                    \
    static_assert(true)

std::string official_model_type(const std::string& model) {
    auto j = nlohmann::json::parse(
        read_file_text(test::shared_dir() + "/conformance/" + model + "/config.json"));
    return j["model_type"];
}

}  // namespace

TEST(CliImport, OfficialFolderOfEveryKindImportsWithNoFlags) {
    T6_NEED_CASES();
    for (const auto& m : kModels) {
        SCOPED_TRACE(m);
        const auto& r = cs.results.at(m);
        ASSERT_EQ(r["rc"], 0) << r["err"].get<std::string>();
        const std::string out = cs.dir.file(m + ".safetensors");
        auto meta = checkpoint_metadata(out);
        auto cfg = nlohmann::json::parse(meta.at("config"));
        EXPECT_EQ(cfg["model_type"], official_model_type(m));
        EXPECT_EQ(nlohmann::json::parse(meta.at("official_config"))["model_type"], "gpt2");
        EXPECT_EQ(meta.at("iter_num"), "7");
        EXPECT_EQ(meta.at("best_val_loss"), "5.25");
        EXPECT_EQ(meta.count("tokenizer"), 0u);  // vocabulary 256: not GPT-2's

        // The imported model computes the official logits and loss.
        auto model = load_model(out);
        const std::string dir = test::shared_dir() + "/conformance/" + m;
        SafeTensorsReader io(dir + "/io.safetensors");
        auto shape = io.info("tokens").shape;
        const int B = int(shape[0]), T = int(shape[1]);
        auto tokens = io.read_i32("tokens"), targets = io.read_i32("targets");
        const float loss = model->forward(tokens.data(), targets.data(), B, T);
        auto ref = io.read_f32("logits");
        const double err = test::rel_error(model->logits(), ref.data(), ref.size());
        EXPECT_LT(err, 1e-5) << "logits relative error " << err;
        EXPECT_NEAR(loss, io.read_f32("loss")[0], 1e-4);

        // optimizer.pt's AdamW state, by t6 parameter name: one torch AdamW step on the
        // conformance gradients leaves exp_avg = (1 - beta1) g and exp_avg_sq = (1 - beta2) g^2.
        SafeTensorsReader adam(cs.dir.file(m + ".adamw.safetensors"));
        EXPECT_EQ(adam.metadata().at("format"), "t6-adamw");
        EXPECT_EQ(adam.metadata().at("adam_step"), "1");
        SafeTensorsReader grads(dir + "/grads.safetensors");
        EXPECT_EQ(adam.tensors().size(), 2 * (grads.tensors().size() - 1));  // lm_head is tied
        for (const std::string name :
             {"transformer.wte.weight", "transformer.h.1.mlp.c_proj.weight"}) {
            auto g = grads.read_f32(name), ea = adam.read_f32("exp_avg." + name),
                 eas = adam.read_f32("exp_avg_sq." + name);
            std::vector<float> w1(g.size()), w2(g.size());
            for (size_t i = 0; i < g.size(); i++) {
                w1[i] = 0.1f * g[i];
                w2[i] = 0.05f * g[i] * g[i];
            }
            EXPECT_LT(test::rel_error(ea.data(), w1.data(), g.size()), 1e-6) << name;
            EXPECT_LT(test::rel_error(eas.data(), w2.data(), g.size()), 1e-6) << name;
        }
    }
}

TEST(CliImport, CheckpointSubfolderAndCkptPt) {
    T6_NEED_CASES();
    for (const std::string c : {"t6_checkpoint", "ckpt_pt"}) {
        const auto& r = cs.results.at(c);
        ASSERT_EQ(r["rc"], 0) << c << ": " << r["err"].get<std::string>();
        auto meta = checkpoint_metadata(cs.dir.file(c + ".safetensors"));
        EXPECT_EQ(nlohmann::json::parse(meta.at("config"))["model_type"], "T6");
        EXPECT_EQ(meta.at("iter_num"), c == "ckpt_pt" ? "11" : "7");
    }
    auto meta = checkpoint_metadata(cs.dir.file("ckpt_pt.safetensors"));
    EXPECT_EQ(nlohmann::json::parse(meta.at("official_train_config"))["learning_rate"], 6e-4);
}

TEST(CliImport, BadInputIsOneLineErrorAndWritesNothing) {
    T6_NEED_CASES();
    const std::map<std::string, std::string> want = {
        {"bad_config", "n_head = 8 contradicts the tensors, which give 4"},
        {"truncated", "pytorch_model.bin: not a readable torch.save file"},
        {"unknown_tensor", "unknown tensor 'transformer.h.0.attn.c_qkv.W_C_q.weight'"},
        {"wrong_model_type", "model_type 'llama-mla' contradicts the tensors, which are a T6"},
        {"tokenizer_missing", "no-such-tokenizer.json: neither gpt2, bytes, none nor a file"}};
    for (const auto& [c, text] : want) {
        SCOPED_TRACE(c);
        const auto& r = cs.results.at(c);
        const std::string err = r["err"];
        EXPECT_EQ(r["rc"], 1);
        EXPECT_EQ(err.rfind("import_official: error: ", 0), 0u) << err;
        EXPECT_NE(err.find(text), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        EXPECT_FALSE(fs::exists(cs.dir.file(c + ".safetensors")));
        EXPECT_FALSE(fs::exists(cs.dir.file(c + ".adamw.safetensors")));
        for (const auto& e : fs::directory_iterator(cs.dir.path()))
            EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
    }
}

TEST(CliImport, InfoDescribesImportedModelAndOfficialConfig) {
    T6_NEED_CASES();
    auto r = test::run_t6("info --model " + q(cs.dir.file("llama_mqa.safetensors")) + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    EXPECT_EQ(j["attention"], "mqa");
    // The official config.json alone says "gpt2": info names what to do instead of guessing.
    r = test::run_t6("info --model " + q(cs.dir.file("t6/config.json")));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("tools/import_official.py"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    // So does the official output folder given as a model.
    r = test::run_t6("info --model " + q(cs.dir.file("t6")));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("tools/import_official.py"), std::string::npos) << r.err;
}

TEST(CliImport, EvalPplRawTokenFileWithFormatOption) {
    T6_NEED_CASES();
    // A raw nanoGPT uint16 file under any name: --format nanogpt reads it.
    std::string raw;
    for (int i = 0; i < 600; i++) {
        uint16_t t = uint16_t((i * 37) % 256);
        raw.append(reinterpret_cast<const char*>(&t), 2);
    }
    write_file_atomic(cs.dir.file("tokens.u16"), raw);
    const std::string model = q(cs.dir.file("t6.safetensors"));
    auto r =
        test::run_t6("eval ppl --model " + model + " --tokens " + q(cs.dir.file("tokens.u16")) +
                     " --format nanogpt --quiet --threads 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    EXPECT_EQ(j["tokens_scored"], 599);
    // Without the option the name decides (llm.c header expected), and the error says how.
    r = test::run_t6("eval ppl --model " + model + " --tokens " + q(cs.dir.file("tokens.u16")));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("--format nanogpt"), std::string::npos) << r.err;
    // Stray arguments are errors, not silently ignored.
    r = test::run_t6("eval ppl --model " + model + " --tokens " + q(cs.dir.file("tokens.u16")) +
                     " --format nanogpt data_format=nanogpt");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("unexpected argument 'data_format=nanogpt'"), std::string::npos) << r.err;
    r = test::run_t6("eval ppl --model " + model + " --tokens " + q(cs.dir.file("tokens.u16")) +
                     " --format u16");
    EXPECT_EQ(r.status, 1);
}

TEST(CliImport, GeneratePrintsTheGreedyIds) {
    T6_NEED_CASES();
    const std::string path = cs.dir.file("t6.safetensors");
    auto r =
        test::run_t6("generate --model " + q(path) +
                     " --prompt abc --temperature 0 --max-new-tokens 6 --ignore-eos --threads 1 "
                     "--print-ids --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    auto prompt = j["prompt_ids"].get<std::vector<int32_t>>();
    auto ids = j["ids"].get<std::vector<int32_t>>();
    ASSERT_EQ(prompt, (std::vector<int32_t>{'a', 'b', 'c'}));
    ASSERT_EQ(ids.size(), 6u);
    // The --print-ids line: the generated ids, space separated.
    std::string line;
    for (int32_t id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
    EXPECT_NE(r.out.find("ids: " + line + "\n"), std::string::npos) << r.out;
    // Greedy: each id is the argmax of a full forward pass over everything before it.
    auto model = load_model(path);
    std::vector<int32_t> seq = prompt;
    seq.insert(seq.end(), ids.begin(), ids.end() - 1);
    const int T = int(seq.size()), V = model->config().vocab_size;
    model->forward(seq.data(), nullptr, 1, T);
    for (size_t k = 0; k < ids.size(); k++) {
        const float* row = model->logits() + size_t(int(prompt.size()) - 1 + int(k)) * V;
        EXPECT_EQ(std::max_element(row, row + V) - row, ids[k]) << "token " << k;
    }
}

TEST(CliImport, TrainContinuesTheOfficialRunWithItsAdamWState) {
    T6_NEED_CASES();
    test::TempDir tmp;
    fs::create_directories(tmp.file("data"));
    for (const auto& [split, n] : std::map<std::string, int>{{"train", 2000}, {"val", 500}}) {
        std::vector<uint16_t> t(static_cast<size_t>(n));
        for (int i = 0; i < n; i++) t[size_t(i)] = uint16_t((i * 7919 + i / 3) % 256);
        write_file_atomic(tmp.file("data/" + split + ".bin"),
                          std::string(reinterpret_cast<const char*>(t.data()), t.size() * 2));
    }
    auto r = test::run_t6("train init_from=" + q(cs.dir.file("t6.safetensors")) +
                          " data=" + q(tmp.file("data")) + " out_dir=" + q(tmp.file("run")) +
                          " max_iters=9 batch_size=2 seq_len=16 eval_interval=9 eval_iters=1 "
                          "threads=1");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE((r.out + r.err).find("continuing the official run imported in"), std::string::npos)
        << r.out << r.err;
    // iter_num 7 of optimizer.pt + 2 steps; Adam's count: 1 (optimizer.pt) + 2.
    auto state = nlohmann::json::parse(read_file_text(tmp.file("run/ckpt_000009/state.json")));
    EXPECT_EQ(state["step"], 9);
    EXPECT_EQ(state["best_val_loss"], 5.25);
    SafeTensorsReader opt(tmp.file("run/ckpt_000009/optimizer.safetensors"));
    EXPECT_EQ(opt.metadata().at("adam_step"), "3");
}

TEST(CliImport, CharTokenizerFromNanoGptMetaPkl) {
    T6_NEED_CASES();
    const auto& r = cs.results.at("tokenizer_meta_pkl");
    ASSERT_EQ(r["rc"], 0) << r["err"].get<std::string>();
    const std::string path = cs.dir.file("tokenizer_meta_pkl.safetensors");
    auto spec = nlohmann::json::parse(checkpoint_metadata(path).at("tokenizer"));
    EXPECT_EQ(spec["format"], "t6-char");
    EXPECT_EQ(spec["vocab_size"], 65);
    // Later commands find it without --tokenizer: "Hi" is ids 20 ('H') and 47 ('i').
    auto g = test::run_t6("generate --model " + q(path) +
                          " --prompt Hi --temperature 0 --max-new-tokens 3 --threads 1 --json");
    ASSERT_EQ(g.status, 0) << g.err;
    EXPECT_EQ(last_json(g.out)["prompt_ids"], nlohmann::json({20, 47}));
}

TEST(CliImport, ExportRoundTripIsExact) {
    T6_NEED_CASES();
    for (const auto& m : kModels) {
        SCOPED_TRACE(m);
        for (const std::string step : {":export", ":roundtrip"}) {
            const auto& r = cs.results.at(m + step);
            ASSERT_EQ(r["rc"], 0) << step << ": " << r["err"].get<std::string>();
        }
        // The exported folder is the official format again.
        auto hf = nlohmann::json::parse(read_file_text(cs.dir.file(m + "_export/config.json")));
        EXPECT_EQ(hf["model_type"], "gpt2");
        EXPECT_TRUE(fs::exists(cs.dir.file(m + "_export/optimizer.pt")));
        // t6 -> official -> t6 gives the same config, iteration, weights and AdamW state, bit
        // for bit.
        auto a = checkpoint_metadata(cs.dir.file(m + ".safetensors"));
        auto b = checkpoint_metadata(cs.dir.file(m + "_rt.safetensors"));
        EXPECT_EQ(nlohmann::json::parse(a.at("config")), nlohmann::json::parse(b.at("config")));
        EXPECT_EQ(a.at("iter_num"), b.at("iter_num"));
        for (const std::string suffix : {".safetensors", ".adamw.safetensors"}) {
            SafeTensorsReader ra(cs.dir.file(m + suffix)), rb(cs.dir.file(m + "_rt" + suffix));
            ASSERT_EQ(ra.tensors().size(), rb.tensors().size()) << suffix;
            for (const auto& t : ra.tensors())
                EXPECT_EQ(ra.read_f32(t.name), rb.read_f32(t.name)) << t.name;
        }
    }
}
