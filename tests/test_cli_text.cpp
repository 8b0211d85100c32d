// End-to-end tests of the text commands (t6 tokenize, t6 tokenizer, t6 prepare). The importer
// (tools/import_official.py) is tested in test_cli_import.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "core/file_util.h"
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
