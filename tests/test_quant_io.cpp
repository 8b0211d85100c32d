// Quantized checkpoints (model/quantize_io.h): quantize -> save -> load gives the same codes,
// scales and minima bit for bit and the dequantized float32 model; a decoder over the loaded
// weights equals one that quantized the model itself; damaged or foreign files give one-line
// errors naming the file and the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "infer/decoder.h"
#include "model/checkpoint.h"
#include "model/quantize_io.h"
#include "test_util.h"

using namespace t6;

namespace {

ModelConfig small_config(AttentionKind kind) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = 50;
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 4;
    c.head_dim = 16;
    c.q_rank = 3;
    c.k_rank = 2;
    c.v_rank = 2;
    c.block_size = 32;
    return c;
}

std::unique_ptr<Model> random_model(AttentionKind kind) {
    auto m = std::make_unique<Model>(small_config(kind));
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.0f, 0.2f);
    for (size_t i = 0; i < m->num_params(); i++) m->params()[i] = d(rng);
    return m;
}

// (memcmp must not see a null pointer, which an empty vector may give, even for 0 bytes.)
bool same_bytes(const void* a, const void* b, size_t n) {
    return n == 0 || std::memcmp(a, b, n) == 0;
}

TEST(QuantCheckpoint, RoundTripIsBitExact) {
    test::TempDir dir;
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (AttentionKind kind : {AttentionKind::tpa, AttentionKind::mha}) {
            auto model = random_model(kind);
            const QuantizedWeights q = quantize_model(*model, s);
            const std::string path = dir.file(std::string("q_") + quant_scheme_name(s) + ".st");
            save_quantized(path, *model, q, {{"tokenizer", "{\"type\":\"bytes\"}"}});
            ASSERT_TRUE(is_quantized_checkpoint(path));
            EXPECT_EQ(checkpoint_metadata(path).at("tokenizer"), "{\"type\":\"bytes\"}");
            QuantizedCheckpoint back = load_quantized(path);
            ASSERT_EQ(back.weights->mats.size(), q.mats.size());
            EXPECT_EQ(back.weights->scheme, s);
            for (size_t i = 0; i < q.mats.size(); i++) {
                const QuantMatrix &a = q.mats[i], &b = back.weights->mats[i];
                ASSERT_EQ(a.rows, b.rows);
                ASSERT_EQ(a.cols, b.cols);
                EXPECT_TRUE(same_bytes(a.codes.data(), b.codes.data(), a.codes.size()));
                EXPECT_TRUE(same_bytes(a.scale.data(), b.scale.data(), a.scale.size() * 4));
                EXPECT_TRUE(same_bytes(a.min.data(), b.min.data(), a.min.size() * 4));
            }
            // The loaded float32 model is the dequantized one.
            Model deq(model->config());
            std::memcpy(deq.params(), model->params(), model->num_params() * 4);
            apply_dequantized(deq, q);
            EXPECT_TRUE(same_bytes(deq.params(), back.model->params(), deq.num_params() * 4));
            // Decoding from the stored weights equals decoding from the ones made at load.
            std::vector<int32_t> toks = {1, 7, 3, 9, 22, 4};
            std::vector<float> l1(50), l2(50);
            Decoder d1(*model, 1, 16, CacheType::f32,
                       s == QuantScheme::q8 ? WeightType::q8 : WeightType::q4);
            Decoder d2(*back.model, 1, 16, CacheType::f32, back.weights);
            d1.append(0, toks.data(), int(toks.size()), l1.data());
            d2.append(0, toks.data(), int(toks.size()), l2.data());
            EXPECT_TRUE(same_bytes(l1.data(), l2.data(), l1.size() * 4));
        }
}

// Rewrites a quantized file with `edit` applied to its tensors (as float / byte vectors) and
// metadata, and returns the one-line error load_quantized gives.
std::string load_error(const std::string& src, const std::string& dst,
                       const std::function<void(std::map<std::string, std::vector<uint8_t>>&,
                                                std::map<std::string, TensorInfo>&,
                                                std::map<std::string, std::string>&)>& edit) {
    SafeTensorsReader r(src);
    std::map<std::string, std::vector<uint8_t>> data;
    std::map<std::string, TensorInfo> info;
    for (const auto& t : r.tensors()) {
        data[t.name].assign(r.raw(t.name), r.raw(t.name) + (t.end - t.begin));
        info[t.name] = t;
    }
    auto meta = r.metadata();
    edit(data, info, meta);
    std::vector<TensorToWrite> w;
    for (const auto& [name, t] : info) w.push_back({name, t.dtype, t.shape, data[name].data()});
    write_safetensors(dst, w, meta);
    try {
        load_quantized(dst);
    } catch (const Error& e) {
        std::string m = e.what();
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        return m;
    }
    return "";
}

TEST(QuantCheckpoint, BadInputGivesOneLineErrors) {
    test::TempDir dir;
    auto model = random_model(AttentionKind::tpa);
    const std::string src = dir.file("q8.st"), bad = dir.file("bad.st");
    save_quantized(src, *model, quantize_model(*model, QuantScheme::q8));
    const std::string scale = "transformer.h.1.mlp.c_fc1.weight.qscale";
    const std::string codes = "transformer.h.0.attn.c_proj.weight.qcodes";
    using D = std::map<std::string, std::vector<uint8_t>>;
    using I = std::map<std::string, TensorInfo>;
    using M = std::map<std::string, std::string>;
    // A damaged scale block: NaN, negative.
    for (float v : {NAN, -1.0f}) {
        std::string e = load_error(src, bad, [&](D& d, I&, M&) {
            std::memcpy(d[scale].data() + 4 * 5, &v, 4);  // row 0, block 5? (2 blocks per row)
        });
        EXPECT_NE(e.find(scale), std::string::npos) << e;
        EXPECT_NE(e.find("damaged"), std::string::npos) << e;
    }
    // A q8 code outside [-127, 127].
    std::string e = load_error(src, bad, [&](D& d, I&, M&) { d[codes][3] = 0x80; });
    EXPECT_NE(e.find("-128"), std::string::npos) << e;
    // An unknown scheme, another block size, a newer version.
    auto with_meta = [&](const std::string& js) {
        return load_error(src, bad, [&](D&, I&, M& m) { m["quantization"] = js; });
    };
    e = with_meta(R"({"version":1,"scheme":"q3","block_size":32})");
    EXPECT_NE(e.find("unknown quantization scheme 'q3'"), std::string::npos) << e;
    e = with_meta(R"({"version":1,"scheme":"q8","block_size":48})");
    EXPECT_NE(e.find("block size 48"), std::string::npos) << e;
    e = with_meta(R"({"version":3,"scheme":"q8","block_size":32})");
    EXPECT_NE(e.find("version 3"), std::string::npos) << e;
    e = with_meta("not json");
    EXPECT_NE(e.find("not a JSON object"), std::string::npos) << e;
    // Stored rows that are not whole blocks (the block size does not divide a row).
    e = load_error(src, bad, [&](D& d, I& i, M&) {
        TensorInfo& t = i[codes];
        t.shape[1] -= 8;
        d[codes].resize(size_t(t.shape[0] * t.shape[1]));
    });
    EXPECT_NE(e.find("does not divide a row"), std::string::npos) << e;
    // A missing scale tensor, a foreign tensor.
    e = load_error(src, bad, [&](D& d, I& i, M&) {
        d.erase(scale);
        i.erase(scale);
    });
    EXPECT_NE(e.find(scale), std::string::npos) << e;
    e = load_error(src, bad, [&](D& d, I& i, M&) {
        i["extra"] = i[scale];
        i["extra"].name = "extra";
        d["extra"] = d[scale];
    });
    EXPECT_NE(e.find("'extra'"), std::string::npos) << e;
    // A float checkpoint is not a quantized one.
    save_weights(dir.file("f32.st"), *model);
    EXPECT_FALSE(is_quantized_checkpoint(dir.file("f32.st")));
    EXPECT_THROW(load_quantized(dir.file("f32.st")), Error);
}

}  // namespace
