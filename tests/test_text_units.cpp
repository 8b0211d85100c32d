// Text building blocks: the GPT-2 pre-tokenizer, UTF-8, SHA-256, the char tokenizer, BPE training
// and encoding, and the document reader's piece cuts (which must not change the tokens).
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "core/file_util.h"
#include "test_util.h"
#include "text/bpe_trainer.h"
#include "text/doc_reader.h"
#include "text/pretokenize.h"
#include "text/sha256.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

using namespace t6;
using namespace t6::text;

namespace {

std::vector<std::string> pieces(const std::string& s) {
    std::vector<uint32_t> ends;
    pretokenize(s, ends);
    std::vector<std::string> out;
    uint32_t b = 0;
    for (uint32_t e : ends) {
        out.push_back(s.substr(b, e - b));
        b = e;
    }
    return out;
}

using V = std::vector<std::string>;

const char* kCorpus =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
    "resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
    "It's the people's choice; we'll see. Café, naïve 😀 123 4567.\n";

}  // namespace

TEST(Pretokenize, MatchesTheGpt2Pattern) {
    EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
    EXPECT_EQ(pieces("it's they're I'll we'VE"),
              (V{"it", "'s", " they", "'re", " I", "'ll", " we", "'", "VE"}));
    EXPECT_EQ(pieces("a  b"), (V{"a", " ", " b"}));
    EXPECT_EQ(pieces("a\n\nb"), (V{"a", "\n", "\n", "b"}));
    EXPECT_EQ(pieces("end  "), (V{"end", "  "}));
    EXPECT_EQ(pieces("x = 12345;"), (V{"x", " =", " 12345", ";"}));
    EXPECT_EQ(pieces(" ?!x"), (V{" ?!", "x"}));
    EXPECT_EQ(pieces("Café ²½"), (V{"Café", " ²½"}));
    EXPECT_EQ(pieces("\xff\xfe ab"), (V{"\xff\xfe", " ab"}));  // invalid bytes: "other"
    EXPECT_EQ(pieces("\u3000x"), (V{"\u3000", "x"}));          // Unicode white space
}

TEST(Utf8, ValidatesStrictly) {
    EXPECT_EQ(utf8_first_invalid("plain ascii text, long enough for the fast path"),
              std::string::npos);
    EXPECT_EQ(utf8_first_invalid("é😀"), std::string::npos);
    EXPECT_EQ(utf8_first_invalid("ab\xc0\xaf"), 2u);            // overlong
    EXPECT_EQ(utf8_first_invalid("abcdefgh\xed\xa0\x80"), 8u);  // surrogate
    EXPECT_EQ(utf8_first_invalid("\xe2\x82"), 0u);              // truncated
    EXPECT_EQ(utf8_length("aé😀"), 3u);
}

TEST(Utf8, LeadBytesCountCodePointsOfValidTextAndSkipContinuationBytes) {
    EXPECT_EQ(utf8_lead_bytes("aé😀"), 3u);
    EXPECT_EQ(utf8_lead_bytes(""), 0u);
    EXPECT_EQ(utf8_lead_bytes("a\x80\xbf"), 1u);  // stray continuation bytes add none
    EXPECT_EQ(utf8_lead_bytes("\xe2\x82"), 1u);   // a truncated character counts once
    EXPECT_EQ(utf8_length("\xe2\x82"), 2u);       // where utf8_length counts each invalid byte
}

TEST(Sha256, KnownVectors) {
    EXPECT_EQ(sha256_hex("", 0),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    std::string abc = "abc";
    EXPECT_EQ(sha256_hex(abc.data(), abc.size()),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    std::string m(1000, 'a');
    EXPECT_EQ(sha256_hex(m.data(), m.size()),
              "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(CharTokenizer, NanoGptVocabulary) {
    CharVocabBuilder b;
    b.add_text("hello world é");
    auto tok = load_tokenizer_spec(b.spec(), "test");
    EXPECT_EQ(tok->kind(), "char");
    EXPECT_EQ(tok->vocab_size(), 9);  // " dehlorwé"
    EXPECT_EQ(tok->eot(), -1);
    EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{3, 2, 4, 4, 5}));
    EXPECT_EQ(tok->decode(tok->encode("world é")), "world é");
    EXPECT_THROW(tok->encode("xyz"), Error);
    // The spec round-trips.
    auto again = load_tokenizer_spec(tok->spec(), "spec");
    EXPECT_EQ(again->encode("hello"), tok->encode("hello"));
}

TEST(BpeTrainer, TrainsLoadsAndRoundTrips) {
    BpeTrainer tr;
    tr.add_text(kCorpus);
    nlohmann::json spec = tr.train(300, false);
    EXPECT_EQ(spec["format"], "t6-bpe");
    EXPECT_EQ(spec["version"], 1);
    EXPECT_EQ(spec["vocab_size"], 300);
    EXPECT_EQ(spec["merges"].size(), 43u);
    auto tok = load_tokenizer_spec(spec, "trained");
    EXPECT_EQ(tok->vocab_size(), 300);
    EXPECT_EQ(tok->eot(), 299);
    std::vector<int32_t> ids = tok->encode(kCorpus);
    EXPECT_LT(ids.size(), std::string(kCorpus).size() * 2 / 3);  // merges compress
    EXPECT_EQ(tok->decode(ids), kCorpus);
    EXPECT_EQ(tok->encode_with_special(std::string("a") + kEndOfText).back(), 299);
    // Arbitrary bytes round-trip too.
    std::mt19937 rng(7);
    for (int t = 0; t < 50; ++t) {
        std::string s;
        for (int i = 0; i < 100; ++i) s += char(rng() & 0xFF);
        ASSERT_EQ(tok->decode(tok->encode(s)), s);
    }
    // Same input, same merges (deterministic).
    BpeTrainer tr2;
    tr2.add_text(kCorpus);
    EXPECT_EQ(tr2.train(300, false), spec);
}

TEST(BpeTrainer, RejectsBadFiles) {
    nlohmann::json bad = {
        {"format", "t6-bpe"}, {"version", 2}, {"merges", nlohmann::json::array()}};
    EXPECT_THROW(load_tokenizer_spec(bad, "f"), Error);
    bad["version"] = 1;
    bad["merges"] = {"ab c"};  // "ab" was never made
    EXPECT_THROW(load_tokenizer_spec(bad, "f"), Error);
    EXPECT_THROW(BpeTrainer().train(100, false), Error);
}

TEST(DocReader, PieceCutsDoNotChangeTokens) {
    BpeTrainer tr;
    tr.add_text(kCorpus);
    auto tok = load_tokenizer_spec(tr.train(320, false), "trained");
    test::TempDir tmp;
    std::string text;
    for (int i = 0; i < 40; ++i) text += kCorpus + std::string(i % 3, ' ') + "\n  x\n";
    write_file_atomic(tmp.file("a.txt"), text);
    DocReaderOptions o;
    o.piece_bytes = 64;  // many cuts
    DocReader r({tmp.file("a.txt")}, o);
    DocPiece p;
    std::vector<int32_t> ids;
    std::string joined;
    int pieces = 0, starts = 0;
    while (r.next(p)) {
        tok->encode(p.text, ids);
        joined += p.text;
        ++pieces;
        starts += p.doc_start;
    }
    EXPECT_GT(pieces, 10);
    EXPECT_EQ(starts, 1);
    EXPECT_EQ(joined, text);
    EXPECT_EQ(ids, tok->encode(text));
}

TEST(DocReader, DocumentModes) {
    test::TempDir tmp;
    write_file_atomic(tmp.file("a.txt"), std::string("one\ntwo\n\n\nthree\n"));
    auto docs = [&](const std::string& mode) {
        DocReaderOptions o;
        o.docs = mode;
        DocReader r({tmp.file("a.txt")}, o);
        DocPiece p;
        V out;
        while (r.next(p)) {
            if (p.doc_start) out.emplace_back();
            out.back() += p.text;
        }
        return out;
    };
    EXPECT_EQ(docs("file"), (V{"one\ntwo\n\n\nthree\n"}));
    EXPECT_EQ(docs("line"), (V{"one", "two", "three"}));
    EXPECT_EQ(docs("blank"), (V{"one\ntwo\n\n\n", "three\n"}));
}
