// End-to-end test of `t6 import hf` on tiny random LLaMA-layout models that tools/hf_reference.py
// writes at test time with Debian's python3-torch (MHA and GQA, tied and untied, F32/BF16/F16,
// one file or two shards, linear and llama3 RoPE scaling, a Mistral config, a Qwen2 model with
// q/k/v biases): the imported
// checkpoint's logits must equal the script's PyTorch forward pass, the decoder's must equal the
// forward pass, and the two hand-made tokenizer.json files (byte-level, SentencePiece-style)
// must give the script's ids. Bad folders: one-line errors naming the file, exit 1, nothing
// written. Skips without python3-torch unless CI is set.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/safetensors.h"
#include "infer/decoder.h"
#include "model/checkpoint.h"
#include "test_cli_util.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

const std::vector<std::string> kCases = {"mha_tied", "mha_untied", "gqa_tied", "gqa_untied",
                                         "qwen2_bias"};

std::string q(const std::string& s) {
    return "'" + s + "'";
}

struct Refs {
    std::string skip;
    test::TempDir dir;
};

// Runs the reference script once for the whole program (python + torch start-up is slow).
Refs& refs() {
    static Refs r = [] {
        Refs r;
        const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        if (test::run_command(py + " -c 'import torch'").status != 0) {
            r.skip = "python3-torch is not installed (scripts/install-deps.sh import)";
            return r;
        }
        auto res =
            test::run_command(py + " " + q(std::string(T6_SOURCE_DIR) + "/tools/hf_reference.py") +
                              " " + q(r.dir.path()));
        if (res.status != 0) r.skip = "the reference script failed: " + res.err;
        return r;
    }();
    return r;
}

#define T6_NEED_REFS()                                                                     \
    Refs& rs = refs();                                                                     \
    if (!rs.skip.empty()) {                                                                \
        if (rs.skip.rfind("the reference script failed", 0) == 0) GTEST_FAIL() << rs.skip; \
        T6_SKIP_UNLESS_CI(rs.skip);                                                        \
    }                                                                                      \
    static_assert(true)

double max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
    return m;
}

class HfImport : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(HfImport, LogitsEqualPyTorchAndDecodeEqualsForward) {
    T6_NEED_REFS();
    const std::string src = rs.dir.file(GetParam()), out = rs.dir.file(GetParam() + ".t6");
    auto r = test::run_t6("import hf " + q(src) + " --out " + q(out) + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = test::last_json(r.out);
    EXPECT_EQ(j["tensors"].get<int>() > 0, true);
    EXPECT_TRUE(j["tokenizer"].get<bool>());

    SafeTensorsReader ref(src + "/reference.safetensors");
    const std::vector<int32_t> tokens = ref.read_i32("tokens");
    const std::vector<float> want = ref.read_f32("logits");
    auto model = load_model(out);
    const int T = int(tokens.size()), V = model->config().vocab_size;
    ASSERT_EQ(want.size(), size_t(T) * V);
    model->forward(tokens.data(), nullptr, 1, T);
    const double err = max_abs_diff(model->logits(), want.data(), want.size());
    EXPECT_LE(err, 1e-4) << GetParam();
    std::printf("%s: max |logit - PyTorch| = %.3g\n", GetParam().c_str(), err);

    // The decoder (prefill of 9, then one token at a time) against the forward pass.
    Decoder dec(*model, 1, T, CacheType::f32);
    std::vector<float> got(size_t(T) * V);
    dec.append(0, tokens.data(), 9, got.data(), true);
    for (int t = 9; t < T; t++) {
        int slot = 0;
        dec.step(&slot, &tokens[size_t(t)], 1, got.data() + size_t(t) * V);
    }
    EXPECT_LE(max_abs_diff(got.data(), model->logits(), got.size()), 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Cases, HfImport, ::testing::ValuesIn(kCases));

TEST(HfTokenizer, EncodesLikeTheReference) {
    T6_NEED_REFS();
    auto cases = nlohmann::json::parse(read_file_text(rs.dir.file("tokenizers.json")));
    for (const auto& kind : {"byte_level", "sentencepiece"}) {
        auto tok = load_tokenizer(cases[kind]["path"].get<std::string>());
        for (const auto& c : cases[kind]["cases"]) {
            const std::string text = c["text"];
            EXPECT_EQ(tok->encode(text), c["ids"].get<std::vector<int32_t>>())
                << kind << ": " << text;
            // Decoding gives the text back (SentencePiece: with the prepended space).
            EXPECT_EQ(tok->decode(tok->encode(text)),
                      std::string(kind) == "sentencepiece" ? " " + text : text);
        }
    }
}

TEST(HfImportCli, GenerateAndBenchDecodeUseTheImport) {
    T6_NEED_REFS();
    test::TempDir d;
    const std::string ck = d.file("m.safetensors");
    ASSERT_EQ(test::run_t6("import hf " + q(rs.dir.file("gqa_untied")) + " --out " + q(ck)).status,
              0);
    // gqa_untied carries the SentencePiece-style tokenizer: the prompt's ids are the script's.
    auto cases = nlohmann::json::parse(read_file_text(rs.dir.file("tokenizers.json")));
    std::vector<int32_t> want;
    for (const auto& c : cases["sentencepiece"]["cases"])
        if (c["text"] == "in the water") want = c["ids"].get<std::vector<int32_t>>();
    ASSERT_FALSE(want.empty());
    auto g = test::run_t6("generate --model " + q(ck) +
                          " --prompt 'in the water' --max-new-tokens 6 --seed 1 --json");
    ASSERT_EQ(g.status, 0) << g.err;
    auto j = test::last_json(g.out);
    EXPECT_EQ(j["prompt_ids"].get<std::vector<int32_t>>(), want) << g.out;
    EXPECT_EQ(j["generated_tokens"], 6) << g.out;
    auto bench = test::run_t6("bench decode --presets " + q(ck) +
                              " --contexts 16 --batches 1 --steps 2 --json");
    EXPECT_EQ(bench.status, 0) << bench.err;
}

namespace {

// A copy of a reference case folder to break.
std::string copy_case(const Refs& rs, const test::TempDir& d, const std::string& name) {
    static int copies = 0;
    const std::string dst = d.file(name + "." + std::to_string(copies++));
    fs::copy(rs.dir.file(name), dst, fs::copy_options::recursive);
    return dst;
}

void expect_import_error(const std::string& dir, const std::string& needle) {
    const std::string out = dir + ".out.safetensors";
    auto r = test::run_t6("import hf " + q(dir) + " --out " + q(out));
    test::expect_one_line_error(r, needle);
    EXPECT_FALSE(fs::exists(out)) << "a failed import wrote " << out;
}

void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& f) {
    auto j = nlohmann::json::parse(read_file_text(path));
    f(j);
    write_file_atomic(path, j.dump());
}

}  // namespace

TEST(HfImportCli, BadFoldersAreOneLineErrors) {
    T6_NEED_REFS();
    test::TempDir d;
    {  // unsupported architecture
        const std::string dir = copy_case(rs, d, "mha_tied");
        edit_json(dir + "/config.json",
                  [](nlohmann::json& j) { j["architectures"] = {"GPTNeoXForCausalLM"}; });
        expect_import_error(dir, "config.json: architecture 'GPTNeoXForCausalLM' is not supported");
    }
    {  // a shard of the index is missing
        const std::string dir = copy_case(rs, d, "mha_untied");
        fs::remove(dir + "/model-00002-of-00002.safetensors");
        expect_import_error(dir, "model.safetensors.index.json: shard 'model-00002-of-00002");
    }
    {  // tokenizer.json of an unknown model type
        const std::string dir = copy_case(rs, d, "gqa_tied");
        edit_json(dir + "/tokenizer.json",
                  [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; });
        expect_import_error(dir, "tokenizer.json: model type 'Unigram' is not supported");
    }
    {  // a tensor of the wrong shape (the MLP width of config.json changed)
        const std::string dir = copy_case(rs, d, "gqa_untied");
        edit_json(dir + "/config.json", [](nlohmann::json& j) { j["intermediate_size"] = 80; });
        expect_import_error(dir, "has shape [96, 64], expected [80, 64] from config.json");
    }
    {  // unsupported RoPE scaling
        const std::string dir = copy_case(rs, d, "mha_tied");
        edit_json(dir + "/config.json", [](nlohmann::json& j) {
            j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
        });
        expect_import_error(dir, "rope_scaling type 'yarn' is not supported");
    }
    {  // not a folder, and a folder without weights
        expect_import_error(d.file("nope"), "not a folder");
        const std::string dir = copy_case(rs, d, "qwen2_bias");
        fs::remove(dir + "/model.safetensors");
        expect_import_error(dir, "no model.safetensors or model.safetensors.index.json");
    }
}
