// t6 prepare's library: output files byte-identical to the nanoGPT / llm.c formats for the same
// tokens, header fields, splits, uint32 files, and one-line file:line errors that leave nothing
// behind.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file_util.h"
#include "test_util.h"
#include "text/bpe_trainer.h"
#include "text/prepare.h"
#include "text/token_files.h"
#include "text/utf8.h"

namespace fs = std::filesystem;
using namespace t6;
using namespace t6::text;

namespace {

const std::string kDoc0 = "The quick brown fox jumps over the lazy dog.\nIt's here.\n";
const std::string kDoc1 = "Pack my box with five dozen liquor jugs!\n";
const std::string kDoc2 = "How vexingly quick daft zebras jump; 12 34.\n";

std::unique_ptr<Tokenizer> small_bpe() {
    BpeTrainer tr;
    tr.add_text(kDoc0 + kDoc1 + kDoc2);
    return load_tokenizer_spec(tr.train(280, false), "test bpe");
}

std::vector<unsigned char> u16_bytes(const std::vector<int32_t>& ids) {
    std::vector<unsigned char> b;
    for (int32_t id : ids) {
        b.push_back((unsigned char)(id & 0xFF));
        b.push_back((unsigned char)(id >> 8));
    }
    return b;
}

std::vector<int32_t> with_eot(const Tokenizer& tok, const std::string& text) {
    std::vector<int32_t> v{tok.eot()};
    tok.encode(text, v);
    return v;
}

std::string json_line(const std::string& text) {
    return nlohmann::json{{"text", text}}.dump() + "\n";
}

std::vector<std::string> listing(const std::string& dir) {
    std::vector<std::string> v;
    if (fs::exists(dir))
        for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename());
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

TEST(Prepare, BinFilesAreRawUint16WithEotBeforeEachDocument) {
    auto tok = small_bpe();
    test::TempDir tmp;
    write_file_atomic(tmp.file("in.jsonl"), json_line(kDoc0) + json_line(kDoc1) + json_line(kDoc2));
    PrepareOptions o;
    o.inputs = {tmp.file("in.jsonl")};
    o.out_dir = tmp.file("out");
    o.split = "docs";
    o.val_fraction = 0.5;  // documents 1 (and 3, ...) go to validation
    PrepareResult r = prepare_data(*tok, o);
    std::vector<int32_t> train = with_eot(*tok, kDoc0), val = with_eot(*tok, kDoc1);
    auto d2 = with_eot(*tok, kDoc2);
    train.insert(train.end(), d2.begin(), d2.end());
    EXPECT_EQ(read_file_bytes(tmp.file("out/train.bin")), u16_bytes(train));
    EXPECT_EQ(read_file_bytes(tmp.file("out/val.bin")), u16_bytes(val));
    EXPECT_EQ(r.train_tokens, int64_t(train.size()));
    EXPECT_EQ(r.documents, 3u);
    auto meta = nlohmann::json::parse(read_file_text(tmp.file("out/meta.json")));
    EXPECT_EQ(meta["dtype"], "uint16");
    EXPECT_EQ(meta["layout"], "bin");
    EXPECT_EQ(meta["vocab_size"], tok->vocab_size());
    EXPECT_EQ(meta["train"]["tokens"], train.size());
    EXPECT_EQ(meta["val"]["files"], nlohmann::json::array({"val.bin"}));
    // The recorded tokenizer is the one used.
    auto again = load_tokenizer_from_meta(tmp.file("out"));
    EXPECT_EQ(again->encode(kDoc2), tok->encode(kDoc2));
    EXPECT_EQ(listing(tmp.file("out")),
              (std::vector<std::string>{"meta.json", "train.bin", "val.bin"}));
}

TEST(Prepare, ShardsHaveLlmcHeaders) {
    auto tok = small_bpe();
    test::TempDir tmp;
    write_file_atomic(tmp.file("a.txt"), kDoc0);
    write_file_atomic(tmp.file("b.txt"), kDoc1);
    PrepareOptions o;
    o.inputs = {tmp.file("a.txt"), tmp.file("b.txt")};
    o.out_dir = tmp.file("out");
    o.layout = "shards";
    o.shard_tokens = 10;
    o.split = "docs";
    o.val_fraction = 0;
    prepare_data(*tok, o);
    std::vector<int32_t> all = with_eot(*tok, kDoc0), d1 = with_eot(*tok, kDoc1);
    all.insert(all.end(), d1.begin(), d1.end());
    std::vector<int32_t> got;
    size_t shards = (all.size() + 9) / 10;
    for (size_t s = 0; s < shards; ++s) {
        char name[64];
        std::snprintf(name, sizeof name, "out/train_%06zu.bin", s);
        auto b = read_file_bytes(tmp.file(name));
        ASSERT_GE(b.size(), 1024u);
        int32_t h[256];
        std::memcpy(h, b.data(), 1024);
        EXPECT_EQ(h[0], 20240520);
        EXPECT_EQ(h[1], 1);
        size_t n = std::min<size_t>(10, all.size() - 10 * s);
        EXPECT_EQ(h[2], int32_t(n));
        for (int i = 3; i < 256; ++i) EXPECT_EQ(h[i], 0);
        ASSERT_EQ(b.size(), 1024 + 2 * n);
        for (size_t i = 0; i < n; ++i) got.push_back(b[1024 + 2 * i] | (b[1025 + 2 * i] << 8));
    }
    EXPECT_EQ(got, all);
    EXPECT_FALSE(
        fs::exists(tmp.file("out/train_" + std::string(6 - std::to_string(shards).size(), '0') +
                            std::to_string(shards) + ".bin")));
    auto meta = nlohmann::json::parse(read_file_text(tmp.file("out/meta.json")));
    EXPECT_EQ(meta["train"]["files"].size(), shards);
    EXPECT_EQ(meta["shard_header"]["magic"], 20240520);
    auto vb = read_file_bytes(tmp.file("out/val_000000.bin"));  // empty split: header only
    ASSERT_EQ(vb.size(), 1024u);
}

TEST(Prepare, TailSplitLikeNanoGptShakespeareChar) {
    test::TempDir tmp;
    std::string text = kDoc0 + kDoc1 + kDoc2 + "é😀\n";
    write_file_atomic(tmp.file("in.txt"), text);
    CharVocabBuilder b;
    b.add_text(text);
    auto tok = load_tokenizer_spec(b.spec(), "char");
    PrepareOptions o;
    o.inputs = {tmp.file("in.txt")};
    o.out_dir = tmp.file("out");
    o.reader.piece_bytes = 32;
    prepare_data(*tok, o);
    std::vector<int32_t> all = tok->encode(text);
    size_t n_train = size_t(double(all.size()) * 0.9);  // train = data[:int(n*0.9)]
    std::vector<int32_t> train(all.begin(), all.begin() + long(n_train)),
        val(all.begin() + long(n_train), all.end());
    EXPECT_EQ(read_file_bytes(tmp.file("out/train.bin")), u16_bytes(train));
    EXPECT_EQ(read_file_bytes(tmp.file("out/val.bin")), u16_bytes(val));
    auto meta = nlohmann::json::parse(read_file_text(tmp.file("out/meta.json")));
    EXPECT_EQ(meta["eot_placement"], "none");
    EXPECT_EQ(meta["tokenizer"]["format"], "t6-char");
}

TEST(Prepare, LargeVocabularyWritesUint32) {
    std::string chars;
    for (int32_t cp = 0x100; cp < 0x100 + 70000 + 2048; ++cp)
        if (cp < 0xD800 || cp > 0xDFFF) utf8_append(chars, cp);
    auto tok = load_tokenizer_spec(
        nlohmann::json{{"format", "t6-char"}, {"version", 1}, {"chars", chars}}, "big");
    ASSERT_GT(tok->vocab_size(), 65536);
    test::TempDir tmp;
    std::string text;
    utf8_append(text, 0x100 + 69000);
    utf8_append(text, 0x100);
    write_file_atomic(tmp.file("in.txt"), text);
    PrepareOptions o;
    o.inputs = {tmp.file("in.txt")};
    o.out_dir = tmp.file("out");
    o.layout = "shards";
    o.val_fraction = 0;
    prepare_data(*tok, o);
    auto b = read_file_bytes(tmp.file("out/train_000000.bin"));
    ASSERT_EQ(b.size(), 1024u + 8);
    int32_t h[3];
    uint32_t ids[2];
    std::memcpy(h, b.data(), 12);
    std::memcpy(ids, b.data() + 1024, 8);
    EXPECT_EQ(h[0], 20240801);
    EXPECT_EQ(h[1], 7);
    EXPECT_EQ(h[2], 2);
    EXPECT_EQ(ids[0], uint32_t(tok->encode(text)[0]));
    EXPECT_GT(ids[0], 65535u);
    auto meta = nlohmann::json::parse(read_file_text(tmp.file("out/meta.json")));
    EXPECT_EQ(meta["dtype"], "uint32");
}

namespace {

// Runs prepare expecting a one-line error containing `want`; the output folder must hold nothing.
void expect_prepare_error(const std::string& file, const std::string& content,
                          const std::string& want, const std::string& field = "text") {
    auto tok = small_bpe();
    test::TempDir tmp;
    write_file_atomic(tmp.file(file), content);
    PrepareOptions o;
    o.inputs = {tmp.file(file)};
    o.out_dir = tmp.file("out");
    o.reader.field = field;
    try {
        prepare_data(*tok, o);
        FAIL() << "expected an error containing " << want;
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(tmp.file(file) + ":" + want), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_EQ(listing(tmp.file("out")), std::vector<std::string>{});
}

}  // namespace

TEST(Prepare, MalformedInputsAreOneLineErrorsWithLineNumbers) {
    expect_prepare_error("bad.txt", "fine\nalso fine\nbroken \xff here\n",
                         "3: invalid UTF-8 at column 8");
    expect_prepare_error("bad.jsonl", json_line("ok") + "{not json}\n", "2: not valid JSON");
    expect_prepare_error("bad.jsonl", json_line("ok") + "{\"body\": \"x\"}\n",
                         "2: no field 'text'");
    expect_prepare_error("bad.jsonl", json_line("ok") + "{\"text\": 5}\n",
                         "2: field 'text' is not a string");
    expect_prepare_error("bad.jsonl", json_line("ok") + "[1, 2]\n", "2: not a JSON object");
    expect_prepare_error("bad.jsonl", "{\"text\": \"a\xff\"}\n", "1: invalid UTF-8");
}

TEST(Prepare, ErrorDuringEncodingLeavesNothingBehind) {
    // A char tokenizer that lacks a character of the second line fails mid-way.
    CharVocabBuilder b;
    b.add_text("abc\n");
    auto tok = load_tokenizer_spec(b.spec(), "char");
    test::TempDir tmp;
    write_file_atomic(tmp.file("in.txt"), std::string("abc\nabz\n"));
    PrepareOptions o;
    o.inputs = {tmp.file("in.txt")};
    o.out_dir = tmp.file("out");
    o.reader.docs = "line";
    o.split = "docs";
    try {
        prepare_data(*tok, o);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("in.txt:2: character U+007A 'z'"), std::string::npos)
            << e.what();
    }
    EXPECT_EQ(listing(tmp.file("out")), std::vector<std::string>{});
}
