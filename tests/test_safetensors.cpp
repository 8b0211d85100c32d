// Safetensors reading/writing: round trips, byte layout, conformance files, malformed input,
// fuzzed input and atomic writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"
#include "core/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using t6::DType;
using t6::SafeTensorsReader;
using t6::TensorToWrite;

namespace {

std::vector<unsigned char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

void dump(const std::string& path, const std::vector<unsigned char>& b) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// A raw file: 8-byte length, the header text as given, then `data_bytes` bytes of data.
std::vector<unsigned char> raw_file(const std::string& header, size_t data_bytes,
                                    uint64_t length = UINT64_MAX) {
    if (length == UINT64_MAX) length = header.size();
    // Built as a string (vector::insert here trips a GCC 12 -Warray-bounds false positive).
    std::string s;
    for (int i = 0; i < 8; i++) s += char((length >> (8 * i)) & 0xff);
    s += header;
    s.append(data_bytes, char(0x11));
    return std::vector<unsigned char>(s.begin(), s.end());
}

uint64_t header_len(const std::vector<unsigned char>& b) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[size_t(i)];
    return n;
}

// Runs `fn`, expecting a t6::Error whose message mentions every string in `words`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& words) {
    try {
        fn();
    } catch (const t6::Error& e) {
        std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "multi-line message: " << msg;
        for (const std::string& w : words)
            EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
        return;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected t6::Error, got another exception: " << e.what();
        return;
    }
    ADD_FAILURE() << "expected t6::Error, nothing thrown";
}

// Writes a raw file into `dir` and expects opening it to fail naming the file and `word`.
void expect_bad_file(const t6::test::TempDir& dir, const std::string& name,
                     const std::vector<unsigned char>& bytes, const std::string& word) {
    std::string path = dir.file(name);
    dump(path, bytes);
    SCOPED_TRACE(name);
    expect_error([&] { SafeTensorsReader r(path); }, {name, word});
}

uint16_t to_bf16(float f) {
    return uint16_t(std::bit_cast<uint32_t>(f) >> 16);
}

// A small valid file with three tensors (used by the fuzz test and the atomic tests).
void write_small(const std::string& path, float base = 0) {
    std::vector<float> a(6);
    for (size_t i = 0; i < a.size(); i++) a[i] = base + float(i);
    std::vector<int32_t> b = {1, -2, 3};
    std::vector<uint16_t> c = {to_bf16(1.5f), to_bf16(-2.0f)};
    t6::write_safetensors(path,
                          {{"a", DType::F32, {2, 3}, a.data()},
                           {"b", DType::I32, {3}, b.data()},
                           {"c", DType::BF16, {2}, c.data()}},
                          {{"k", "v"}});
}

std::vector<std::string> tmp_leftovers(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string n = e.path().filename().string();
        if (n.find(".tmp.") != std::string::npos) out.push_back(n);
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips and layout

TEST(SafeTensors, RoundTripF32I32BF16WithMetadata) {
    t6::test::TempDir dir;
    std::string path = dir.file("rt.safetensors");
    std::vector<float> w = t6::test::random_vector(4 * 5, 1);
    std::vector<int32_t> ids = {0, 1, -7, 2147483647, -2147483647 - 1, 42};
    std::vector<float> bf_src = {1.0f, -0.5f, 3.140625f, 0.0f, -1e30f, 65504.0f};
    std::vector<uint16_t> bf(bf_src.size());
    for (size_t i = 0; i < bf.size(); i++) bf[i] = to_bf16(bf_src[i]);
    float scalar = 2.5f;
    // Given out of order on purpose: the writer sorts by name.
    t6::write_safetensors(path,
                          {{"zeta.weight", DType::F32, {4, 5}, w.data()},
                           {"alpha.ids", DType::I32, {2, 3}, ids.data()},
                           {"mid.bf16", DType::BF16, {6}, bf.data()},
                           {"scalar", DType::F32, {}, &scalar},
                           {"empty", DType::F32, {0, 3}, nullptr}},
                          {{"tied", "yes"}, {"step", "12"}});

    SafeTensorsReader r(path);
    EXPECT_EQ(r.path(), path);
    EXPECT_EQ(r.metadata().size(), 2u);
    EXPECT_EQ(r.metadata().at("tied"), "yes");
    EXPECT_EQ(r.metadata().at("step"), "12");
    ASSERT_EQ(r.tensors().size(), 5u);
    EXPECT_TRUE(r.has("zeta.weight"));
    EXPECT_FALSE(r.has("zeta"));

    EXPECT_EQ(r.info("zeta.weight").dtype, DType::F32);
    EXPECT_EQ(r.info("zeta.weight").shape, (std::vector<int64_t>{4, 5}));
    EXPECT_EQ(r.read_f32("zeta.weight"), w);
    std::vector<float> w2(20);
    r.read_f32("zeta.weight", w2.data(), {4, 5});
    EXPECT_EQ(w2, w);

    EXPECT_EQ(r.info("alpha.ids").dtype, DType::I32);
    EXPECT_EQ(r.read_i32("alpha.ids"), ids);
    std::vector<float> idf = r.read_f32("alpha.ids");
    for (size_t i = 0; i < ids.size(); i++) EXPECT_EQ(idf[i], float(ids[i]));

    EXPECT_EQ(r.info("mid.bf16").dtype, DType::BF16);
    std::vector<float> bfr = r.read_f32("mid.bf16");
    for (size_t i = 0; i < bf.size(); i++)
        EXPECT_EQ(bfr[i], std::bit_cast<float>(uint32_t(bf[i]) << 16)) << i;
    EXPECT_EQ(bfr[0], 1.0f);
    EXPECT_EQ(bfr[1], -0.5f);
    EXPECT_EQ(bfr[2], 3.140625f);

    EXPECT_TRUE(r.info("scalar").shape.empty());
    EXPECT_EQ(r.info("scalar").numel(), 1);
    EXPECT_EQ(r.read_f32("scalar"), std::vector<float>{2.5f});
    EXPECT_EQ(r.info("empty").numel(), 0);
    EXPECT_TRUE(r.read_f32("empty").empty());
}

TEST(SafeTensors, ByteLayout) {
    t6::test::TempDir dir;
    std::string path = dir.file("layout.safetensors");
    std::vector<float> a(3, 1.0f), b(5, 2.0f), c(7, 3.0f);
    t6::write_safetensors(path,
                          {{"c", DType::F32, {7}, c.data()},
                           {"a", DType::F32, {3}, a.data()},
                           {"b", DType::F32, {5}, b.data()}},
                          {});
    std::vector<unsigned char> bytes = slurp(path);
    uint64_t n = header_len(bytes);
    EXPECT_EQ(n % 8, 0u);
    ASSERT_LE(8 + n, bytes.size());
    EXPECT_EQ(bytes.size(), 8 + n + (3 + 5 + 7) * 4);
    std::string header(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n));
    // Compact JSON padded with spaces, no metadata when none is given.
    EXPECT_EQ(header.find('\n'), std::string::npos);
    EXPECT_EQ(header.find("__metadata__"), std::string::npos);
    EXPECT_EQ(header.find(", "), std::string::npos);
    size_t last = header.find_last_not_of(' ');
    EXPECT_EQ(header[last], '}');
    EXPECT_LT(header.size() - last - 1, 8u);

    SafeTensorsReader r(path);
    ASSERT_EQ(r.tensors().size(), 3u);
    const char* names[] = {"a", "b", "c"};
    size_t off = 0;
    for (size_t i = 0; i < 3; i++) {
        const t6::TensorInfo& t = r.tensors()[i];
        EXPECT_EQ(t.name, names[i]);
        EXPECT_EQ(t.begin, off);
        off = t.end;
    }
    EXPECT_EQ(off, (3 + 5 + 7) * 4u);
    // Data in name order, right after the header.
    float v;
    std::memcpy(&v, bytes.data() + 8 + n, 4);
    EXPECT_EQ(v, 1.0f);
    std::memcpy(&v, bytes.data() + 8 + n + 3 * 4, 4);
    EXPECT_EQ(v, 2.0f);
    std::memcpy(&v, bytes.data() + 8 + n + 8 * 4, 4);
    EXPECT_EQ(v, 3.0f);
}

TEST(SafeTensors, F16AndI64Conversion) {
    t6::test::TempDir dir;
    std::string path = dir.file("conv.safetensors");
    // 1.0, -2.0, 65504 (max), smallest subnormal, largest subnormal, +inf, -inf, nan, -0.
    std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff,
                               0x7c00, 0xfc00, 0x7e00, 0x8000};
    std::vector<int64_t> big = {1, -5, 2147483647, -2147483648LL};
    std::vector<int64_t> too_big = {1, 2147483648LL};
    t6::write_safetensors(path,
                          {{"h", DType::F16, {9}, h.data()},
                           {"i64", DType::I64, {4}, big.data()},
                           {"i64big", DType::I64, {2}, too_big.data()}},
                          {});
    SafeTensorsReader r(path);
    std::vector<float> f = r.read_f32("h");
    EXPECT_EQ(f[0], 1.0f);
    EXPECT_EQ(f[1], -2.0f);
    EXPECT_EQ(f[2], 65504.0f);
    EXPECT_EQ(f[3], std::ldexp(1.0f, -24));
    EXPECT_EQ(f[4], 1023 * std::ldexp(1.0f, -24));
    EXPECT_TRUE(std::isinf(f[5]) && f[5] > 0);
    EXPECT_TRUE(std::isinf(f[6]) && f[6] < 0);
    EXPECT_TRUE(std::isnan(f[7]));
    EXPECT_TRUE(f[8] == 0.0f && std::signbit(f[8]));
    EXPECT_EQ(r.read_i32("i64"), (std::vector<int32_t>{1, -5, 2147483647, -2147483647 - 1}));
    expect_error([&] { r.read_i32("i64big"); }, {"conv.safetensors", "i64big", "int32"});
    expect_error([&] { r.read_i32("h"); }, {"conv.safetensors", "dtype"});
    expect_error([&] { r.read_f32("i64"); }, {"conv.safetensors", "dtype"});
}

// ---------------------------------------------------------------------------------------------
// Official conformance files

TEST(SafeTensors, ConformanceWeights) {
    T6_REQUIRE_SHARED("conformance/t6");
    SafeTensorsReader r(shared_path_ + "/weights.safetensors");
    EXPECT_EQ(r.tensors().size(), 22u);
    ASSERT_TRUE(r.has("transformer.wte.weight"));
    EXPECT_EQ(r.info("transformer.wte.weight").shape, (std::vector<int64_t>{256, 64}));
    EXPECT_EQ(r.info("transformer.wte.weight").dtype, DType::F32);
    EXPECT_EQ(r.metadata().count("tied"), 1u);
    std::vector<float> wte(256 * 64);
    r.read_f32("transformer.wte.weight", wte.data(), {256, 64});
    for (float x : wte) ASSERT_TRUE(std::isfinite(x));
    expect_error(
        [&] {
            r.read_f32("lm_head.weight", wte.data(), {256, 32});
        },
        {"weights.safetensors", "lm_head.weight", "[256, 64]", "[256, 32]"});
}

TEST(SafeTensors, ConformanceIO) {
    T6_REQUIRE_SHARED("conformance/t6");
    SafeTensorsReader r(shared_path_ + "/io.safetensors");
    ASSERT_TRUE(r.has("tokens"));
    EXPECT_EQ(r.info("tokens").dtype, DType::I32);
    EXPECT_EQ(r.info("tokens").shape, (std::vector<int64_t>{2, 16}));
    std::vector<int32_t> tokens = r.read_i32("tokens");
    ASSERT_EQ(tokens.size(), 32u);
    for (int32_t t : tokens) EXPECT_TRUE(t >= 0 && t < 256) << t;
    ASSERT_TRUE(r.has("loss"));
    EXPECT_EQ(r.info("loss").shape, (std::vector<int64_t>{1}));
    std::vector<float> loss = r.read_f32("loss");
    ASSERT_EQ(loss.size(), 1u);
    EXPECT_NEAR(loss[0], 6.136735, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(SafeTensors, BadTruncatedData) {
    t6::test::TempDir dir;
    std::string good = dir.file("good.safetensors");
    write_small(good);
    std::vector<unsigned char> b = slurp(good);
    b.resize(b.size() - 3);
    expect_bad_file(dir, "cutdata.safetensors", b, "truncated");
}

TEST(SafeTensors, BadTruncatedInsideHeader) {
    t6::test::TempDir dir;
    std::string good = dir.file("good.safetensors");
    write_small(good);
    std::vector<unsigned char> b = slurp(good);
    b.resize(8 + header_len(b) / 2);
    expect_bad_file(dir, "cuthead.safetensors", b, "exceeds file size");
    b.resize(5);
    expect_bad_file(dir, "cutlen.safetensors", b, "too short");
}

TEST(SafeTensors, BadHeaderJson) {
    t6::test::TempDir dir;
    expect_bad_file(dir, "json.safetensors",
                    raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 4),
                    "JSON");
    expect_bad_file(dir, "array.safetensors", raw_file("[1, 2, 3]", 0), "object");
    expect_bad_file(dir, "deep.safetensors",
                    raw_file("{\"a\": " + std::string(5000, '[') + std::string(5000, ']') + "}", 0),
                    "deeper");
    expect_bad_file(dir, "dup.safetensors",
                    raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                             R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                             8),
                    "duplicate");
    expect_bad_file(dir, "meta.safetensors", raw_file(R"({"__metadata__": {"k": 1}})", 0),
                    "__metadata__");
    expect_bad_file(dir, "meta2.safetensors", raw_file(R"({"__metadata__": [1]})", 0),
                    "__metadata__");
    expect_bad_file(dir, "nodtype.safetensors",
                    raw_file(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4), "dtype");
    expect_bad_file(dir, "noshape.safetensors",
                    raw_file(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4), "shape");
    expect_bad_file(
        dir, "neg.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4), "shape");
    expect_bad_file(
        dir, "fshape.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4), "shape");
    expect_bad_file(
        dir, "overflow.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296],)"
                 R"( "data_offsets": [0, 4]}})",
                 4),
        "overflow");
    expect_bad_file(dir, "entry.safetensors", raw_file(R"({"a": 3})", 0), "object");
}

TEST(SafeTensors, BadHeaderLength) {
    t6::test::TempDir dir;
    std::string h = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
    expect_bad_file(dir, "long.safetensors", raw_file(h, 4, 4096), "exceeds file size");
    expect_bad_file(dir, "absurd.safetensors", raw_file(h, 4, uint64_t(1) << 62),
                    "exceeds file size");
}

TEST(SafeTensors, BadDtype) {
    t6::test::TempDir dir;
    expect_bad_file(dir, "dtype.safetensors",
                    raw_file(R"({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4),
                    "dtype");
    expect_bad_file(dir, "dtype2.safetensors",
                    raw_file(R"({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4),
                    "dtype");
}

TEST(SafeTensors, BadOffsetsOutOfRange) {
    t6::test::TempDir dir;
    expect_bad_file(
        dir, "range.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 8),
        "out of range");
    expect_bad_file(
        dir, "huge.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612,)"
                 R"( 18446744073709551616]}})",
                 8),
        "data_offsets");
    expect_bad_file(dir, "rev.safetensors",
                    raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 8),
                    "reversed");
    expect_bad_file(
        dir, "three.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8),
        "data_offsets");
}

TEST(SafeTensors, BadSizeMismatch) {
    t6::test::TempDir dir;
    expect_bad_file(
        dir, "size.safetensors",
        raw_file(R"({"a": {"dtype": "F32", "shape": [5, 5], "data_offsets": [0, 96]}})", 100),
        "F32 [5, 5] needs 100 bytes");
}

TEST(SafeTensors, BadOverlap) {
    t6::test::TempDir dir;
    expect_bad_file(dir, "overlap.safetensors",
                    raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                             R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                             12),
                    "overlap");
    // Regions listed out of order but disjoint are fine.
    std::string ok = dir.file("unsorted.safetensors");
    dump(ok, raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},)"
                      R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                      8));
    SafeTensorsReader r(ok);
    EXPECT_EQ(r.info("a").begin, 4u);
}

TEST(SafeTensors, BadTensorRequests) {
    t6::test::TempDir dir;
    std::string path = dir.file("req.safetensors");
    write_small(path);
    SafeTensorsReader r(path);
    expect_error([&] { r.info("nope"); }, {"req.safetensors", "nope", "not found"});
    expect_error([&] { r.read_f32("nope"); }, {"req.safetensors", "nope", "not found"});
    expect_error([&] { r.read_i32("nope"); }, {"req.safetensors", "nope", "not found"});
    std::vector<float> buf(6);
    expect_error(
        [&] {
            r.read_f32("a", buf.data(), {3, 2});
        },
        {"req.safetensors", "'a'", "[2, 3]", "[3, 2]"});
}

TEST(SafeTensors, BadEmptyAndMissingFiles) {
    t6::test::TempDir dir;
    expect_bad_file(dir, "empty.safetensors", {}, "too short");
    expect_error([&] { SafeTensorsReader r(dir.file("missing.safetensors")); },
                 {"missing.safetensors", "cannot open"});
    fs::create_directory(dir.file("adir.safetensors"));
    expect_error([&] { SafeTensorsReader r(dir.file("adir.safetensors")); },
                 {"adir.safetensors", "directory"});
}

TEST(SafeTensors, FuzzCorruptions) {
    t6::test::TempDir dir;
    std::string good = dir.file("good.safetensors");
    write_small(good);
    const std::vector<unsigned char> base = slurp(good);
    std::string path = dir.file("fuzz.safetensors");
    std::mt19937 rng(1234);
    int ok = 0, rejected = 0;
    for (int iter = 0; iter < 2000; iter++) {
        std::vector<unsigned char> b = base;
        int kind = int(rng() % 4);
        if (kind == 0) {
            b.resize(rng() % b.size());  // truncation
        } else {
            // Corrupt one byte; bias towards the length field and header where it matters.
            size_t limit = kind == 1 ? 8 : (kind == 2 ? 8 + header_len(base) : b.size());
            size_t pos = rng() % limit;
            unsigned char v = static_cast<unsigned char>(rng());
            if (v == b[pos]) v ^= 0x40;
            b[pos] = v;
        }
        dump(path, b);
        try {
            SafeTensorsReader r(path);
            for (const t6::TensorInfo& t : r.tensors()) {
                // Whatever was accepted must be readable (or refused cleanly).
                try {
                    if (t.dtype == DType::I32 || t.dtype == DType::I64)
                        (void)r.read_i32(t.name);
                    else
                        (void)r.read_f32(t.name);
                } catch (const t6::Error&) {
                }
            }
            ok++;
        } catch (const t6::Error& e) {
            std::string msg = e.what();
            ASSERT_NE(msg.find("fuzz.safetensors"), std::string::npos) << msg;
            ASSERT_EQ(msg.find('\n'), std::string::npos) << msg;
            rejected++;
        }
    }
    EXPECT_GT(rejected, 0);
    EXPECT_GT(ok, 0);
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

TEST(SafeTensors, AtomicWriteMissingFolder) {
    t6::test::TempDir dir;
    std::string path = dir.file("nope/sub/x.safetensors");
    expect_error([&] { write_small(path); }, {"x.safetensors"});
    EXPECT_FALSE(fs::exists(dir.file("nope")));
    EXPECT_TRUE(fs::is_empty(dir.path()));
    expect_error([&] { t6::write_file_atomic(path, std::string("hi")); }, {"x.safetensors"});
    EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(SafeTensors, AtomicWriteLeavesNoTemp) {
    t6::test::TempDir dir;
    std::string path = dir.file("m.safetensors");
    write_small(path);
    EXPECT_TRUE(fs::exists(path));
    EXPECT_TRUE(tmp_leftovers(dir.path()).empty());
    t6::write_file_atomic(dir.file("t.txt"), std::string("hello"));
    EXPECT_EQ(t6::read_file_text(dir.file("t.txt")), "hello");
    EXPECT_TRUE(tmp_leftovers(dir.path()).empty());
    EXPECT_TRUE(t6::file_exists(dir.file("t.txt")));
    EXPECT_FALSE(t6::file_exists(dir.file("u.txt")));
    EXPECT_FALSE(t6::file_exists(dir.path()));
}

TEST(SafeTensors, AtomicWriteOverwritesWhole) {
    t6::test::TempDir dir;
    std::string path = dir.file("o.safetensors");
    // A large file first, then a smaller one: no stale tail may survive.
    std::vector<float> big(10000, 7.0f);
    t6::write_safetensors(path, {{"big", DType::F32, {10000}, big.data()}}, {{"old", "1"}});
    size_t big_size = fs::file_size(path);
    write_small(path, 100.0f);
    EXPECT_LT(fs::file_size(path), big_size);
    SafeTensorsReader r(path);
    EXPECT_FALSE(r.has("big"));
    EXPECT_EQ(r.metadata().count("old"), 0u);
    EXPECT_EQ(r.metadata().at("k"), "v");
    EXPECT_EQ(r.read_f32("a")[5], 105.0f);
    EXPECT_TRUE(tmp_leftovers(dir.path()).empty());

    // A failed write (path is a directory) leaves no temporary behind.
    fs::create_directory(dir.file("d"));
    expect_error([&] { write_small(dir.file("d")); }, {"d"});
    EXPECT_TRUE(tmp_leftovers(dir.path()).empty());
}

TEST(SafeTensors, WriteRejectsBadInput) {
    t6::test::TempDir dir;
    std::string path = dir.file("w.safetensors");
    float x = 1;
    expect_error(
        [&] {
            t6::write_safetensors(path, {{"a", DType::F32, {1}, &x}, {"a", DType::F32, {1}, &x}},
                                  {});
        },
        {"w.safetensors", "duplicate"});
    expect_error(
        [&] {
            t6::write_safetensors(path, {{"a", DType::F32, {-1}, &x}}, {});
        },
        {"w.safetensors", "shape"});
    expect_error(
        [&] {
            t6::write_safetensors(path, {{"a", DType::F32, {1}, nullptr}}, {});
        },
        {"w.safetensors", "data"});
    expect_error(
        [&] {
            t6::write_safetensors(path, {{"__metadata__", DType::F32, {1}, &x}}, {});
        },
        {"w.safetensors", "__metadata__"});
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir.path()));
}
