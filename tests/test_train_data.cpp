// Token files (nanoGPT raw uint16, llm.c shards) and the batch sampler: formats, windows, data
// order, and one-line errors for bad input naming the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "test_train_util.h"
#include "test_util.h"
#include "train/token_data.h"

using namespace t6;

namespace {

// Runs f, expecting a t6::Error whose one-line message contains every fragment.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
    try {
        f();
        ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
        for (const auto& s : fragments)
            EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
    }
}

std::vector<uint16_t> iota_tokens(size_t n, int vocab) {
    std::vector<uint16_t> t(n);
    for (size_t i = 0; i < n; i++) t[i] = uint16_t(i % vocab);
    return t;
}

TEST(TokenFile, ReadsNanoGptAndLlmcFormats) {
    test::TempDir tmp;
    const auto toks = iota_tokens(1000, 50);
    test::write_raw_tokens(tmp.file("train.bin"), toks);
    test::write_llmc_tokens(tmp.file("shard_train_000.bin"), toks);
    TokenFile raw(tmp.file("train.bin"), TokenFormat::automatic, 64);
    TokenFile llmc(tmp.file("shard_train_000.bin"), TokenFormat::automatic, 64);
    EXPECT_FALSE(raw.has_header());
    EXPECT_TRUE(llmc.has_header());
    ASSERT_EQ(raw.size(), 1000u);
    ASSERT_EQ(llmc.size(), 1000u);
    for (size_t i = 0; i < 1000; i++) {
        EXPECT_EQ(raw.token(i), toks[i]);
        EXPECT_EQ(llmc.token(i), toks[i]);
    }
    // An llm.c file named train.bin is recognised by its magic number.
    test::write_llmc_tokens(tmp.file("val.bin"), toks);
    EXPECT_TRUE(TokenFile(tmp.file("val.bin"), TokenFormat::automatic, 64).has_header());
}

TEST(TokenFile, BadHeaderSizeVersionAndTokenIdsAreOneLineErrors) {
    test::TempDir tmp;
    const auto toks = iota_tokens(500, 50);
    const std::string bad_magic = tmp.file("a_train_000.bin");
    test::write_llmc_tokens(bad_magic, toks, 12345);
    expect_error([&] { TokenFile f(bad_magic, TokenFormat::automatic, 64); },
                 {bad_magic, "bad magic number 12345"});

    const std::string bad_version = tmp.file("b_train_000.bin");
    test::write_llmc_tokens(bad_version, toks, kLlmcMagic, 2);
    expect_error([&] { TokenFile f(bad_version, TokenFormat::llmc, 64); },
                 {bad_version, "version 2"});

    const std::string bad_size = tmp.file("c_train_000.bin");
    test::write_llmc_tokens(bad_size, toks, kLlmcMagic, kLlmcVersion, 600);
    expect_error([&] { TokenFile f(bad_size, TokenFormat::automatic, 64); },
                 {bad_size, "disagrees with the header", "600"});

    const std::string short_header = tmp.file("d_train_000.bin");
    test::write_bytes(short_header, "abcd", 4);
    expect_error([&] { TokenFile f(short_header, TokenFormat::automatic, 64); },
                 {short_header, "too short"});

    const std::string odd = tmp.file("train.bin");
    test::write_bytes(odd, "abc", 3);
    expect_error([&] { TokenFile f(odd, TokenFormat::nanogpt, 64); },
                 {odd, "not a whole number of uint16 tokens"});

    auto with_bad_id = toks;
    with_bad_id[321] = 64;
    const std::string bad_id = tmp.file("val.bin");
    test::write_raw_tokens(bad_id, with_bad_id);
    expect_error([&] { TokenFile f(bad_id, TokenFormat::automatic, 64); },
                 {bad_id, "token id 64", "position 321", "vocab_size 64"});
    // The same id is fine for a larger vocabulary.
    EXPECT_NO_THROW(TokenFile(bad_id, TokenFormat::automatic, 65));

    expect_error([&] { TokenFile f(tmp.file("missing.bin"), TokenFormat::automatic, 64); },
                 {tmp.file("missing.bin"), "cannot open"});
}

TEST(TokenFile, Uint32ShardsAndRawFiles) {
    test::TempDir tmp;
    std::vector<uint32_t> ids = {5, 70000, 3, 99999, 1, 2, 3, 4};
    std::vector<int32_t> header(256, 0);
    header[0] = kLlmcMagicU32;
    header[1] = kLlmcVersionU32;
    header[2] = int32_t(ids.size());
    std::vector<unsigned char> bytes(1024 + ids.size() * 4);
    std::memcpy(bytes.data(), header.data(), 1024);
    std::memcpy(bytes.data() + 1024, ids.data(), ids.size() * 4);
    test::write_bytes(tmp.file("s_train_000.bin"), bytes.data(), bytes.size());
    TokenFile f(tmp.file("s_train_000.bin"), TokenFormat::automatic, 100000);
    EXPECT_EQ(f.width(), 4);
    ASSERT_EQ(f.size(), ids.size());
    EXPECT_EQ(f.token(3), 99999u);
    std::vector<int32_t> x(3), y(3);
    f.copy_window(1, 3, x.data(), y.data());
    EXPECT_EQ(x, (std::vector<int32_t>{70000, 3, 99999}));
    EXPECT_EQ(y, (std::vector<int32_t>{3, 99999, 1}));
    EXPECT_THROW(TokenFile(tmp.file("s_train_000.bin"), TokenFormat::automatic, 80000), Error);

    test::write_bytes(tmp.file("train.bin"), ids.data(), ids.size() * 4);
    TokenFile raw(tmp.file("train.bin"), TokenFormat::nanogpt, 100000, TokenFile::kScanLimit, 4);
    EXPECT_EQ(raw.token(1), 70000u);
    // A folder whose meta.json says uint32.
    test::write_bytes(tmp.file("val.bin"), ids.data(), ids.size() * 4);
    test::write_bytes(tmp.file("meta.json"), "{\"dtype\": \"uint32\"}", 19);
    EXPECT_EQ(find_data_files(tmp.path()).raw_width, 4);
}

TEST(TokenFile, LazyCheckFindsBadIdsInsideAWindow) {
    test::TempDir tmp;
    auto toks = iota_tokens(300, 50);
    toks[200] = 60;
    test::write_raw_tokens(tmp.file("train.bin"), toks);
    TokenFile f(tmp.file("train.bin"), TokenFormat::automatic, 60, /*scan_limit=*/0);
    EXPECT_FALSE(f.scanned());
    EXPECT_NO_THROW(f.check_range(0, 200));
    expect_error([&] { f.check_range(150, 100); },
                 {tmp.file("train.bin"), "token id 60", "position 200"});
    // Scanned at open (small file): the error comes at once.
    expect_error([&] { TokenFile g(tmp.file("train.bin"), TokenFormat::automatic, 60); },
                 {"position 200"});
}

TEST(DataFiles, NanoGptFolderAndShardFolders) {
    test::TempDir a, b, c;
    test::write_raw_tokens(a.file("train.bin"), iota_tokens(100, 10));
    test::write_raw_tokens(a.file("val.bin"), iota_tokens(100, 10));
    auto d = find_data_files(a.path());
    ASSERT_EQ(d.train.size(), 1u);
    EXPECT_EQ(d.val, std::vector<std::string>{a.file("val.bin")});

    for (const char* n : {"x_train_000002.bin", "x_train_000001.bin", "x_val_000000.bin"})
        test::write_llmc_tokens(b.file(n), iota_tokens(100, 10));
    d = find_data_files(b.path());
    EXPECT_EQ(d.train, (std::vector<std::string>{b.file("x_train_000001.bin"),
                                                 b.file("x_train_000002.bin")}));
    EXPECT_EQ(d.val.size(), 1u);

    test::write_raw_tokens(c.file("train.bin"), iota_tokens(100, 10));
    expect_error([&] { find_data_files(c.path()); }, {c.path(), "val.bin"});
    expect_error([&] { find_data_files(c.file("nope")); }, {"nope", "not found"});
}

TEST(BatchSampler, WindowsAreShiftedByOneAndInRange) {
    test::TempDir tmp;
    const int T = 16, B = 8;
    const auto toks = iota_tokens(T + 1 + 3, 60000);  // only 4 possible windows
    test::write_raw_tokens(tmp.file("train.bin"), toks);
    auto split = open_token_split({tmp.file("train.bin")}, TokenFormat::automatic, 65536, T + 1);
    BatchSampler s(split, B, T, 42);
    std::vector<int32_t> x(B * T), y(B * T);
    std::vector<int> seen(4, 0);
    for (int k = 0; k < 50; k++) {
        s.next(x.data(), y.data());
        for (int b = 0; b < B; b++) {
            const int start = x[b * T];
            ASSERT_GE(start, 0);
            ASSERT_LE(start, 3);  // i in [0, len - T - 1]
            seen[start]++;
            for (int t = 0; t < T; t++) {
                EXPECT_EQ(x[b * T + t], start + t);
                EXPECT_EQ(y[b * T + t], start + t + 1);
            }
        }
    }
    for (int c : seen) EXPECT_GT(c, 0);  // every start is drawn
}

TEST(BatchSampler, StateRestoresTheSameSequenceAndFilesAreReadInOrder) {
    test::TempDir tmp;
    const int T = 8, B = 2;
    // Two shards with disjoint token ranges: the sampler stays in one for about a pass over it.
    std::vector<uint16_t> s0(64), s1(64);
    for (int i = 0; i < 64; i++) s0[i] = uint16_t(i), s1[i] = uint16_t(1000 + i);
    test::write_llmc_tokens(tmp.file("d_train_0.bin"), s0);
    test::write_llmc_tokens(tmp.file("d_train_1.bin"), s1);
    auto split = open_token_split({tmp.file("d_train_0.bin"), tmp.file("d_train_1.bin")},
                                  TokenFormat::automatic, 2048, T + 1);
    BatchSampler a(split, B, T, 7);
    std::vector<int32_t> x(B * T), y(B * T);
    std::vector<int> shard_of_batch;
    for (int k = 0; k < 12; k++) {
        a.next(x.data(), y.data());
        shard_of_batch.push_back(x[0] >= 1000);
    }
    // 64 / (2*8) = 4 batches per visit: 0000 1111 0000.
    EXPECT_EQ(shard_of_batch, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0}));

    BatchSampler b(split, B, T, 7);
    for (int k = 0; k < 5; k++) b.next(x.data(), y.data());
    const SamplerState st = SamplerState::from_json(b.state().to_json(), "test");
    std::vector<int32_t> expect_x(B * T), expect_y(B * T);
    b.next(expect_x.data(), expect_y.data());
    BatchSampler c(split, B, T, 999);
    c.set_state(st, "test");
    c.next(x.data(), y.data());
    EXPECT_EQ(x, expect_x);
    EXPECT_EQ(y, expect_y);
}

TEST(BatchSampler, FileShorterThanAWindowIsAnError) {
    test::TempDir tmp;
    test::write_raw_tokens(tmp.file("train.bin"), iota_tokens(16, 10));
    expect_error([&] { open_token_split({tmp.file("train.bin")}, TokenFormat::automatic, 64, 17); },
                 {tmp.file("train.bin"), "16 tokens", "seq_len + 1 = 17"});
}

}  // namespace
