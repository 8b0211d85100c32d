// End-to-end: `t6 train` with sample_tokens on a char-level dataset prepared by `t6 prepare` prints
// its closing sample in that dataset's tokenizer (resolved from meta.json): the prompt encoded
// and the tokens decoded as the corpus's characters, not taken as bytes (ids 0..6 as bytes would
// be control characters, printed as '?'), with a vocabulary far below 256.
#include <gtest/gtest.h>

#include <string>

#include "core/file_util.h"
#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;

TEST(CliTrainSample, CharDataSamplesInItsOwnTokenizer) {
    test::TempDir tmp;
    std::string text;
    for (int i = 0; i < 300; i++) text += "abc cab. bca!\n";  // 7 characters
    write_file_atomic(tmp.file("in.txt"), text);
    const test::CommandResult prep = test::run_t6("prepare '" + tmp.file("in.txt") + "' --out '" +
                                                  tmp.file("data") + "' --tokenizer char --quiet");
    ASSERT_EQ(prep.status, 0) << prep.err;
    // vocab_size 16: the model's rows are wider than the tokenizer's 7 ids (never sampled).
    const test::CommandResult r = test::run_t6(
        "train --preset tiny-t6 data='" + tmp.file("data") + "' out_dir='" + tmp.file("out") +
        "' vocab_size=16 n_layer=1 block_size=32 seq_len=16 batch_size=2 max_iters=2 "
        "eval_iters=1 threads=1 sample_tokens=12 sample_prompt=cab");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const std::string head = "sample (greedy, 12 tokens, tokenizer char):\n";
    const size_t at = r.out.find(head);
    ASSERT_NE(at, std::string::npos) << r.out;
    const std::string sample = r.out.substr(at + head.size());
    ASSERT_EQ(sample.rfind("cab", 0), 0u) << sample;
    // The 12 sampled characters (the log line ends with a newline of its own).
    int chars = 0;
    for (size_t i = 3; i < sample.size() && chars < 12; i++, chars++)
        EXPECT_NE(std::string("abc .!\n").find(sample[i]), std::string::npos)
            << "character " << int(sample[i]) << " in " << sample;
    EXPECT_EQ(chars, 12) << sample;
}
