// End-to-end: the loose text inputs of issue #17, item 12: an id too large for any integer in
// `t6 tokenize --decode`, `t6 prepare` on empty input, non-UTF-8 text with the byte tokenizer,
// and tokenizer files with an out-of-range eot or a duplicated merge.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "test_cli_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

std::string q(const std::string& s) {
    return "'" + s + "'";
}

bool one_line_error(const test::CommandResult& r) {
    return r.status == 1 && r.err.rfind("t6: error: ", 0) == 0 &&
           std::count(r.err.begin(), r.err.end(), '\n') == 1;
}

}  // namespace

TEST(CliTextInputs, DecodeOfAnIdBeyondAnyIntegerIsAOneLineError) {
    for (const char* id : {"18446744073709551617", "99999999999", "50257"}) {
        test::CommandResult r = test::run_t6(std::string("tokenize --decode ") + id);
        EXPECT_TRUE(one_line_error(r)) << id << ": " << r.status << " " << r.err;
        EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << id << ": " << r.err;
    }
}

TEST(CliTextInputs, PrepareOfEmptyInputFailsAndWritesNothing) {
    test::TempDir tmp;
    write_file_atomic(tmp.file("empty.txt"), std::string());
    test::CommandResult r = test::run_t6("prepare " + q(tmp.file("empty.txt")) +
                                         " --tokenizer bytes --out " + q(tmp.file("d")));
    EXPECT_TRUE(one_line_error(r)) << r.status << " " << r.out << r.err;
    EXPECT_NE(r.err.find("no text"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp.file("d/meta.json")));
    EXPECT_FALSE(fs::exists(tmp.file("d/train.bin")));
}

TEST(CliTextInputs, PrepareWithByteTokenizerTakesTextThatIsNotUtf8) {
    test::TempDir tmp;
    std::string text;
    for (int i = 0; i < 64; i++) text += std::string("abc\xff\xfe def\x80 ") + char('a' + i % 26);
    write_file_atomic(tmp.file("latin1.txt"), text);
    test::CommandResult r = test::run_t6("prepare " + q(tmp.file("latin1.txt")) +
                                         " --tokenizer bytes --out " + q(tmp.file("d")));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto meta = nlohmann::json::parse(read_file_text(tmp.file("d/meta.json")));
    // One token per byte (no end-of-text token: the byte tokenizer has none).
    EXPECT_EQ(meta["train"]["tokens"].get<size_t>() + meta["val"]["tokens"].get<size_t>(),
              text.size());
    // Tokenizers that need UTF-8 still say where it is broken.
    r = test::run_t6("prepare " + q(tmp.file("latin1.txt")) + " --tokenizer gpt2 --out " +
                     q(tmp.file("d2")));
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
}

TEST(CliTextInputs, TokenizerFileWithBadEotOrDuplicatedMergeIsRejected) {
    test::TempDir tmp;
    // "h e" is written as mapped bytes; a valid file: 2 merges, vocab 259, eot 258.
    nlohmann::json good = {{"format", "t6-bpe"}, {"version", 1}, {"pretokenizer", "gpt2"},
                           {"vocab_size", 259},  {"eot", 258},   {"merges", {"h e", "l l"}}};
    write_file_atomic(tmp.file("good.json"), good.dump());
    test::CommandResult r =
        test::run_t6("tokenize --tokenizer " + q(tmp.file("good.json")) + " hello");
    ASSERT_EQ(r.status, 0) << r.err;

    nlohmann::json bad_eot = good;
    bad_eot["eot"] = 70000;
    nlohmann::json dup = good;
    dup["merges"] = {"h e", "l l", "h e"};
    dup["vocab_size"] = 260;
    dup["eot"] = 259;
    write_file_atomic(tmp.file("bad_eot.json"), bad_eot.dump());
    write_file_atomic(tmp.file("dup.json"), dup.dump());
    r = test::run_t6("tokenize --tokenizer " + q(tmp.file("bad_eot.json")) + " hello");
    EXPECT_TRUE(one_line_error(r)) << r.status << " " << r.err;
    EXPECT_NE(r.err.find("eot 70000"), std::string::npos) << r.err;
    r = test::run_t6("tokenize --tokenizer " + q(tmp.file("dup.json")) + " hello");
    EXPECT_TRUE(one_line_error(r)) << r.status << " " << r.err;
    EXPECT_NE(r.err.find("duplicated merge"), std::string::npos) << r.err;
}
