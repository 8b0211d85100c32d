// End-to-end tests of the text commands (t6 tokenize, t6 tokenizer, t6 prepare) and of
// tools/import_official.py (official ckpt.pt -> t6 checkpoint -> same logits as the official
// code's). The importer test needs Debian's python3-torch and $T6_SHARED/conformance; it skips
// with a message otherwise.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "core/file_util.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

struct ShellResult {
    int status = -1;
    std::string out, err;
};

// Runs a shell command; stdout captured, stderr captured through a file.
ShellResult sh(const std::string& cmd, const test::TempDir& tmp) {
    ShellResult r;
    std::string errf = tmp.file("stderr.txt");
    FILE* p = popen((cmd + " 2>" + errf).c_str(), "r");
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = file_exists(errf) ? read_file_text(errf) : "";
    return r;
}

const std::string kT6 = T6_BINARY;
const char* kCorpus =
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\nNo more; and by a sleep to say we end\n";

}  // namespace

TEST(CliText, TrainTokenizeDecodePrepare) {
    test::TempDir tmp;
    write_file_atomic(tmp.file("corpus.txt"), std::string(kCorpus));
    ShellResult r = sh(kT6 + " tokenizer train " + tmp.file("corpus.txt") +
                           " --vocab-size 300 --quiet --out " + tmp.file("tok.json"),
                       tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    auto tok = load_tokenizer(tmp.file("tok.json"));
    r = sh(kT6 + " tokenize --tokenizer " + tmp.file("tok.json") + " --json 'to be or not'", tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), tok->encode("to be or not"));
    std::string ids;
    for (int32_t id : tok->encode("the question")) ids += std::to_string(id) + " ";
    r = sh(kT6 + " tokenize --decode --tokenizer " + tmp.file("tok.json") + " " + ids, tmp);
    EXPECT_EQ(r.out, "the question");

    // Prepare from stdin (document split), then take the tokenizer from the data's meta.json.
    r = sh("printf 'one\\ntwo\\nthree\\n' | " + kT6 + " prepare - --docs line --tokenizer " +
               tmp.file("tok.json") + " --out " + tmp.file("data"),
           tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    auto meta = nlohmann::json::parse(read_file_text(tmp.file("data/meta.json")));
    EXPECT_EQ(meta["split"], "docs");
    EXPECT_EQ(meta["documents"], 3);
    r = sh(kT6 + " tokenize --data " + tmp.file("data") + " 'to be'", tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    std::string want;
    for (int32_t id : tok->encode("to be")) want += (want.empty() ? "" : " ") + std::to_string(id);
    EXPECT_EQ(r.out, want + "\n");
}

TEST(CliText, PrepareErrorIsOneLineWithFileAndLine) {
    test::TempDir tmp;
    write_file_atomic(tmp.file("c.txt"), std::string("abc\nd\xc3(\n"));
    ShellResult r =
        sh(kT6 + " prepare " + tmp.file("c.txt") + " --tokenizer char --out " + tmp.file("o"), tmp);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "t6: error: " + tmp.file("c.txt") + ":2: invalid UTF-8 at column 2\n");
    EXPECT_FALSE(fs::exists(tmp.file("o/meta.json")));
}

TEST(CliText, Gpt2TokenizeAndBench) {
    if (!gpt2_vocab_available())
        T6_SKIP_UNLESS_CI("GPT-2 vocabulary not in " << gpt2_vocab_dir()
                                                     << ": run tools/fetch-gpt2-vocab.sh");
    test::TempDir tmp;
    ShellResult r = sh(kT6 + " tokenize 'Hello world'", tmp);
    EXPECT_EQ(r.out, "15496 995\n");
    write_file_atomic(tmp.file("b.txt"), std::string(kCorpus));
    r = sh(kT6 + " tokenize --bench " + tmp.file("b.txt") + " --threads 2 --json", tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_GT(nlohmann::json::parse(r.out)["mb_per_s_1thread"].get<double>(), 0);
}

TEST(CliText, ImportOfficialCheckpointRoundTrip) {
    T6_REQUIRE_SHARED("conformance/t6");
    test::TempDir tmp;
    const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    if (sh(py + " -c 'import torch'", tmp).status != 0)
        T6_SKIP_UNLESS_CI("python3-torch is not installed (scripts/install-deps.sh import)");
    // An official-format ckpt.pt from the conformance weights: state_dict keys prefixed by
    // torch.compile's _orig_mod., both tied names, model_type only in the training config.
    write_file_atomic(tmp.file("mk.py"), std::string(R"PY(
import json, struct, sys, torch
src, cfgp, out = sys.argv[1:4]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
sd = {}
for k, v in h.items():
    if k == '__metadata__':
        continue
    s, e = v['data_offsets']
    t = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=torch.float32)
    sd['_orig_mod.' + k] = t.reshape(v['shape'])
cfg = json.load(open(cfgp))
mt = cfg.pop('model_type')
torch.save({'model': sd, 'model_args': cfg, 'config': {'model_type': mt}, 'iter_num': 7}, out)
)PY"));
    const std::string dir = shared_path_;
    ShellResult r = sh(py + " " + tmp.file("mk.py") + " " + dir + "/weights.safetensors " + dir +
                           "/config.json " + tmp.file("ckpt.pt"),
                       tmp);
    ASSERT_EQ(r.status, 0) << r.err;
    r = sh(py + " " + std::string(T6_SOURCE_DIR) + "/tools/import_official.py " +
               tmp.file("ckpt.pt") + " -o " + tmp.file("model.safetensors"),
           tmp);
    ASSERT_EQ(r.status, 0) << r.err;

    auto model = load_model(tmp.file("model.safetensors"));
    SafeTensorsReader meta(tmp.file("model.safetensors"));
    EXPECT_EQ(meta.metadata().at("format"), "t6");
    EXPECT_EQ(meta.metadata().at("iter_num"), "7");
    EXPECT_EQ(nlohmann::json::parse(meta.metadata().at("tokenizer"))["kind"], "gpt2");
    SafeTensorsReader io(dir + "/io.safetensors");
    auto shape = io.info("tokens").shape;
    const int B = int(shape[0]), T = int(shape[1]);
    auto tokens = io.read_i32("tokens"), targets = io.read_i32("targets");
    model->forward(tokens.data(), targets.data(), B, T);
    auto ref = io.read_f32("logits");
    double err = test::rel_error(model->logits(), ref.data(), ref.size());
    EXPECT_LT(err, 1e-4) << "logits relative error " << err;
}
