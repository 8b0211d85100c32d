// Incremental inference: token-by-token decoding over the KV cache gives the logits of the full
// forward pass, for every attention kind; FlashTPA equals materialise-then-attend; the cache
// allocation equals the per-kind formula.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <tuple>

#include "core/error.h"
#include "core/simd.h"
#include "infer/decode_cost.h"
#include "infer/decoder.h"
#include "kernels/flash_decode.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

std::vector<int32_t> random_tokens(int n, int V, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng() % V);
    return t;
}

struct KindCase {
    const char* name;
    AttentionKind kind;
};

// Every case runs at every SIMD target this CPU supports (the decoding kernels dispatch at run
// time: AVX-512 with and without BF16, AVX2, scalar).
class DecodeMatchesForward : public ::testing::TestWithParam<std::tuple<KindCase, SimdTarget>> {
  protected:
    const KindCase& kc() const { return std::get<0>(GetParam()); }
    void SetUp() override { target_ = std::make_unique<ScopedSimdTarget>(std::get<1>(GetParam())); }
    void TearDown() override { target_.reset(); }

  private:
    std::unique_ptr<ScopedSimdTarget> target_;
};

TEST_P(DecodeMatchesForward, PrefillThenStepsF32) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    test::randomize_weights(model, 7);
    const int T = 40, V = cfg.vocab_size;
    auto tokens = random_tokens(T, V, 3);
    model.forward(tokens.data(), nullptr, 1, T);
    std::vector<float> ref(model.logits(), model.logits() + size_t(T) * V);

    Decoder dec(model, 2, 64, CacheType::f32);
    dec.chunk_tokens = 7;  // several chunks in the prefill
    const int prompt = 17;
    std::vector<float> got(size_t(T) * V);
    dec.append(0, tokens.data(), prompt, got.data(), true);
    for (int t = prompt; t < T; t++) {
        int slot = 0;
        dec.step(&slot, &tokens[t], 1, got.data() + size_t(t) * V);
    }
    for (int t = 0; t < T; t++) {
        double e = test::rel_error(got.data() + size_t(t) * V, ref.data() + size_t(t) * V, V);
        ASSERT_LT(e, 1e-4) << kc().name << " position " << t;
    }
    EXPECT_EQ(dec.cache().length(0), T);
}

TEST_P(DecodeMatchesForward, BatchedStepsOfDifferentLengths) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    test::randomize_weights(model, 11);
    const int V = cfg.vocab_size;
    const int lens[3] = {9, 30, 21};
    std::vector<std::vector<int32_t>> seqs;
    std::vector<std::vector<float>> refs;
    for (int s = 0; s < 3; s++) {
        seqs.push_back(random_tokens(lens[s] + 5, V, 100 + s));
        model.forward(seqs[s].data(), nullptr, 1, lens[s] + 5);
        refs.emplace_back(model.logits(), model.logits() + size_t(lens[s] + 5) * V);
    }
    Decoder dec(model, 3, 64, CacheType::f32);
    std::vector<float> last(V);
    for (int s = 0; s < 3; s++) dec.append(s, seqs[s].data(), lens[s], last.data());
    std::vector<float> logits(3 * V);
    for (int k = 0; k < 5; k++) {
        int slots[3] = {2, 0, 1};  // any order
        int32_t toks[3];
        for (int i = 0; i < 3; i++) toks[i] = seqs[slots[i]][lens[slots[i]] + k];
        dec.step(slots, toks, 3, logits.data());
        for (int i = 0; i < 3; i++) {
            const int s = slots[i], pos = lens[s] + k;
            double e = test::rel_error(&logits[size_t(i) * V], &refs[s][size_t(pos) * V], V);
            ASSERT_LT(e, 1e-4) << kc().name << " seq " << s << " step " << k;
        }
    }
}

TEST_P(DecodeMatchesForward, Bf16CacheStaysClose) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    test::randomize_weights(model, 5);
    const int T = 24, V = cfg.vocab_size;
    auto tokens = random_tokens(T, V, 9);
    model.forward(tokens.data(), nullptr, 1, T);
    Decoder dec(model, 1, 32, CacheType::bf16);
    std::vector<float> got(size_t(T) * V);
    dec.append(0, tokens.data(), 8, got.data(), true);
    for (int t = 8; t < T; t++) {
        int slot = 0;
        dec.step(&slot, &tokens[t], 1, got.data() + size_t(t) * V);
    }
    double e = test::rel_error(got.data(), model.logits(), size_t(T) * V);
    EXPECT_LT(e, 2e-2);  // bf16 keeps 8 significant bits of each cached number
    EXPECT_GT(e, 0.0);   // and it really is rounded
}

// bf16 weights: on a model whose weights are already bf16 values the bf16-weight decoder equals
// the float32 decoder (only summation order differs), prefill chunks and batched steps of
// different lengths included; on the unrounded model it stays close but really differs.
TEST_P(DecodeMatchesForward, Bf16WeightsEqualF32OnRoundedWeights) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    test::randomize_weights(model, 13);
    const size_t np = model.layout().total;
    std::vector<float> orig(model.params(), model.params() + np);
    const int V = cfg.vocab_size;
    const int lens[2] = {11, 26};
    auto run = [&](WeightType wt) {
        Decoder dec(model, 2, 40, CacheType::f32, wt);
        dec.chunk_tokens = 8;
        std::vector<float> out;
        std::vector<float> logits(size_t(2) * V);
        for (int s = 0; s < 2; s++) {
            auto toks = random_tokens(lens[s], V, 200 + s);
            dec.append(s, toks.data(), lens[s], logits.data());
            out.insert(out.end(), logits.begin(), logits.begin() + V);
        }
        for (int k = 0; k < 4; k++) {
            int slots[2] = {1, 0};
            int32_t toks[2] = {int32_t((7 * k + 1) % V), int32_t((5 * k + 3) % V)};
            dec.step(slots, toks, 2, logits.data());
            out.insert(out.end(), logits.begin(), logits.end());
        }
        return out;
    };
    const auto f32_orig = run(WeightType::f32), bf16_orig = run(WeightType::bf16);
    const double e_orig = test::rel_error(bf16_orig.data(), f32_orig.data(), f32_orig.size());
    EXPECT_LT(e_orig, 2e-2) << kc().name;
    EXPECT_GT(e_orig, 0.0) << kc().name;
    for (size_t i = 0; i < np; i++) model.params()[i] = bf16_to_float(float_to_bf16(orig[i]));
    const auto f32_r = run(WeightType::f32), bf16_r = run(WeightType::bf16);
    EXPECT_LT(test::rel_error(bf16_r.data(), f32_r.data(), f32_r.size()), 1e-5) << kc().name;
}

TEST_P(DecodeMatchesForward, CacheAllocationEqualsFormula) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    const int slots = 3, seq = 50;
    Decoder dec(model, slots, seq, CacheType::f32);
    long per_token_layer = 0;
    const long H = cfg.n_head, D = cfg.head_dim;
    switch (cfg.attention) {
        case AttentionKind::mha:
            per_token_layer = 2 * H * D;
            break;
        case AttentionKind::mqa:
            per_token_layer = 2 * D;
            break;
        case AttentionKind::gqa:
            per_token_layer = 2 * cfg.n_kv_head * D;
            break;
        case AttentionKind::mla:  // [c_KV (d_c) | k_pe (d_h^R)]
            per_token_layer = cfg.kv_lora_rank + cfg.qk_rope_head_dim;
            break;
        default:
            per_token_layer = (cfg.k_rank + cfg.v_rank) * (H + D);
            break;
    }
    // The TPA kinds' float32 cache holds whole groups of 16 tokens per slot (B_K grouped,
    // kernels/flash_decode.h): 50 positions take 64.
    const bool grouped =
        cfg.attention == AttentionKind::tpa || cfg.attention == AttentionKind::tpa_kvonly;
    EXPECT_EQ(dec.cache().tpa_group(), grouped ? kTpaGroup : 0);
    const long held = grouped ? tpa_group_tokens(seq) : seq;
    EXPECT_EQ(dec.cache().bytes(), size_t(per_token_layer) * 4 * cfg.n_layer * slots * held);
    // Inference holds the weights and the cache, no gradient buffer.
    std::vector<int32_t> prompt = {1, 2, 3};
    std::vector<float> logits(size_t(cfg.vocab_size));
    dec.append(0, prompt.data(), 3, logits.data());
    EXPECT_EQ(static_cast<const Model&>(model).grads(), nullptr);
    Decoder dec16(model, slots, seq, CacheType::bf16);
    EXPECT_EQ(dec16.cache().bytes(), size_t(per_token_layer) * 2 * cfg.n_layer * slots * seq);
}

TEST_P(DecodeMatchesForward, ContextOverflowIsAnError) {
    ModelConfig cfg = test::tiny_test_config(kc().kind);
    Model model(cfg);
    Decoder dec(model, 1, 8, CacheType::f32);
    auto tokens = random_tokens(9, cfg.vocab_size, 1);
    std::vector<float> logits(cfg.vocab_size);
    EXPECT_THROW(dec.append(0, tokens.data(), 9, logits.data()), Error);
    tokens[0] = cfg.vocab_size;  // out of vocabulary
    EXPECT_THROW(dec.append(0, tokens.data(), 1, logits.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(Kinds, DecodeMatchesForward,
                         ::testing::Combine(::testing::Values(KindCase{"tpa", AttentionKind::tpa},
                                                              KindCase{"tpa_kvonly",
                                                                       AttentionKind::tpa_kvonly},
                                                              KindCase{"mha", AttentionKind::mha},
                                                              KindCase{"gqa", AttentionKind::gqa},
                                                              KindCase{"mqa", AttentionKind::mqa},
                                                              KindCase{"mla", AttentionKind::mla}),
                                            ::testing::ValuesIn(simd_available_targets())),
                         [](const auto& info) {
                             return std::string(std::get<0>(info.param).name) + "_" +
                                    simd_target_name(std::get<1>(info.param));
                         });

// MLA with a history longer than the chunk path's 64-key tiles and 64-row query blocks, at
// realistic proportions (d_c > head_dim): chunked prefill, then absorbed steps, f32 and bf16.
// The roofline's two phases (decode_cost.h) add up to the step's bytes and FLOPs; the sum of their
// floors bounds the overlapped floor from above and equals it when one phase vanishes (no cache).
TEST(DecodeCost, PhasesAddUpAndTheSerialFloorBoundsTheOverlappedOne) {
    const ModelConfig cfg = test::tiny_test_config(AttentionKind::tpa);
    const double bw = 30e9, fl = 200e9;
    const DecodeCost empty = decode_step_cost(cfg, 1, 0, 4.0, 4.0);
    EXPECT_EQ(empty.cache_bytes, 0.0);
    EXPECT_EQ(empty.attention_flops, 0.0);
    EXPECT_DOUBLE_EQ(empty.serial_floor_s(bw, fl), empty.floor_s(bw, fl));
    for (long ctx : {64L, 4096L, 1L << 20}) {
        const DecodeCost c = decode_step_cost(cfg, 2, ctx, 1.0625, 1.0);
        EXPECT_DOUBLE_EQ(c.bytes, c.weight_bytes + c.cache_bytes) << ctx;
        EXPECT_DOUBLE_EQ(c.flops, c.weight_flops + c.attention_flops) << ctx;
        EXPECT_DOUBLE_EQ(c.cache_bytes, 2.0 * ctx * cfg.n_layer * kv_record_numbers(cfg)) << ctx;
        EXPECT_DOUBLE_EQ(c.attention_flops,
                         2.0 * ctx * cfg.n_layer * attention_flops_per_cached_token(cfg))
            << ctx;
        EXPECT_EQ(c.core_weight_bytes, 0.0) << ctx;  // TPA's core has no weights of its own
        EXPECT_GE(c.serial_floor_s(bw, fl), c.floor_s(bw, fl) * (1 - 1e-12)) << ctx;
        EXPECT_LE(c.serial_floor_s(bw, fl), 2.0 * c.floor_s(bw, fl)) << ctx;
    }
    // MLA's absorbed products read its up-projections (q_b_proj, kv_b_proj) inside attention.
    const ModelConfig mla = test::tiny_test_config(AttentionKind::mla);
    const DecodeCost m = decode_step_cost(mla, 1, 64, 2.0, 4.0);
    const long H = mla.n_head, D = mla.head_dim, R = mla.qk_rope_head_dim, Dv = mla.v_dim();
    EXPECT_DOUBLE_EQ(m.core_weight_bytes,
                     2.0 * mla.n_layer *
                         double(H * (D + R) * mla.q_lora_rank + H * (D + Dv) * mla.kv_lora_rank));
    EXPECT_DOUBLE_EQ(m.core_weight_flops, m.core_weight_bytes);  // 2 FLOPs, 2 bytes per weight
    EXPECT_DOUBLE_EQ(m.attention_floor_s(bw, 1e30), (m.cache_bytes + m.core_weight_bytes) / bw);
    EXPECT_DOUBLE_EQ(m.linear_floor_s(bw, 1e30), (m.weight_bytes - m.core_weight_bytes) / bw);
    // A memory-bound phase (1 GB of weights: 0.1 s at 10 GB/s) then a compute-bound one (100
    // GFLOP of attention: 1 s at 100 GFLOP/s): the phases' floors add (1.1 s), above the
    // overlapped floor max(1.1 GB / 10 GB/s, 102 GFLOP / 100 GFLOP/s) = 1.02 s.
    DecodeCost c;
    c.weight_bytes = 1e9, c.weight_flops = 2e9, c.cache_bytes = 1e8, c.attention_flops = 1e11;
    c.bytes = c.weight_bytes + c.cache_bytes, c.flops = c.weight_flops + c.attention_flops;
    EXPECT_DOUBLE_EQ(c.linear_floor_s(1e10, 1e11), 0.1);
    EXPECT_DOUBLE_EQ(c.attention_floor_s(1e10, 1e11), 1.0);
    EXPECT_DOUBLE_EQ(c.serial_floor_s(1e10, 1e11), 1.1);
    EXPECT_DOUBLE_EQ(c.floor_s(1e10, 1e11), 1.02);
    // Attention at a bf16 dot-product rate twice the FMA rate (200 GFLOP/s): its 100 GFLOP take
    // 0.5 s, the weights' 2 GFLOP still 0.02 s at the FMA rate; 0 means the FMA rate.
    EXPECT_DOUBLE_EQ(c.attention_floor_s(1e10, 1e11, 2e11), 0.5);
    EXPECT_DOUBLE_EQ(c.serial_floor_s(1e10, 1e11, 2e11), 0.6);
    EXPECT_DOUBLE_EQ(c.compute_s(1e11, 2e11), 0.52);
    EXPECT_DOUBLE_EQ(c.floor_s(1e10, 1e11, 2e11), 0.52);
    EXPECT_DOUBLE_EQ(c.floor_s(1e10, 1e11, 0.0), c.floor_s(1e10, 1e11));
    EXPECT_DOUBLE_EQ(c.compute_s(1e11), 1.02);
}

// A decoding step reports the time its attention took: positive, and within the step.
TEST(Decoder, TimesTheAttentionPhaseOfAStep) {
    const ModelConfig cfg = test::tiny_test_config(AttentionKind::tpa);
    Model model(cfg);
    test::randomize_weights(model, 3);
    Decoder dec(model, 1, 64, CacheType::f32);
    const int slot = 0;
    std::vector<float> logits(cfg.vocab_size);
    for (int32_t tok = 1; tok <= 4; tok++) {
        const auto t0 = std::chrono::steady_clock::now();
        dec.step(&slot, &tok, 1, logits.data());
        const double step_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_GT(dec.last_attention_seconds(), 0.0);
        EXPECT_LE(dec.last_attention_seconds(), step_s);
    }
}

TEST(MlaCache, LongPrefillCrossesTilesThenAbsorbedSteps) {
    ModelConfig cfg = test::tiny_test_config(AttentionKind::mla);
    cfg.block_size = 200;
    cfg.n_head = 3;
    cfg.head_dim = 8;
    cfg.kv_lora_rank = 24;
    cfg.q_lora_rank = 12;
    Model model(cfg);
    test::randomize_weights(model, 21);
    const int T = 180, V = cfg.vocab_size, prompt = 150;
    auto tokens = random_tokens(T, V, 4);
    model.forward(tokens.data(), nullptr, 1, T);
    for (CacheType type : {CacheType::f32, CacheType::bf16}) {
        Decoder dec(model, 2, 200, type);
        dec.chunk_tokens = 70;  // chunks starting mid-tile
        std::vector<float> got(size_t(T) * V);
        dec.append(1, tokens.data(), prompt, got.data(), true);
        for (int t = prompt; t < T; t++) {
            int slot = 1;
            dec.step(&slot, &tokens[t], 1, got.data() + size_t(t) * V);
        }
        const double tol = type == CacheType::f32 ? 1e-4 : 2e-2;
        for (int t = 0; t < T; t++) {
            double e =
                test::rel_error(got.data() + size_t(t) * V, model.logits() + size_t(t) * V, V);
            ASSERT_LT(e, tol) << cache_type_name(type) << " position " << t;
        }
    }
}

// Absorbed MLA decoding on random latent records equals decompress-then-attend in double:
// k_h = [W_UK[h] c_j | k_pe_j], v_h = W_UV[h] c_j, q_lat = W_UK[h]^T q_nope (DeepSeek-V2 eq. 10).
class FlashMla : public ::testing::TestWithParam<int> {};

TEST_P(FlashMla, AbsorbedEqualsDecompressThenAttend) {
    const int H = GetParam(), C = 40, R = 8, D = 16, Dv = 12;
    const MlaCacheDims dims{H, C, R};
    const float scale = 1.0f / std::sqrt(float(D + R));
    const int lens[3] = {1, 77, 1100};  // single token, a partial block, several splits
    auto wuk = test::random_vector(size_t(H) * D * C, 1);
    auto wuv = test::random_vector(size_t(H) * Dv * C, 2);
    std::vector<std::vector<float>> caches, qn, qp, qabs, outs;
    for (int i = 0; i < 3; i++) {
        caches.push_back(test::random_vector(size_t(lens[i]) * dims.rec(), 10 + i));
        qn.push_back(test::random_vector(size_t(H) * D, 20 + i));
        qp.push_back(test::random_vector(size_t(H) * R, 30 + i));
        std::vector<float> a(size_t(H) * dims.rec(), 0.0f);
        for (int h = 0; h < H; h++) {
            for (int d = 0; d < D; d++)
                for (int k = 0; k < C; k++)
                    a[h * dims.rec() + k] += qn[i][h * D + d] * wuk[(size_t(h) * D + d) * C + k];
            for (int r = 0; r < R; r++) a[h * dims.rec() + C + r] = qp[i][h * R + r];
        }
        qabs.push_back(a);
        outs.emplace_back(size_t(H) * C);
    }
    std::vector<const float*> qs, cp;
    std::vector<float*> op;
    for (int i = 0; i < 3; i++) {
        qs.push_back(qabs[i].data());
        cp.push_back(caches[i].data());
        op.push_back(outs[i].data());
    }
    flash_mla_decode(op.data(), qs.data(), cp.data(), lens, 3, dims, scale);
    for (int i = 0; i < 3; i++) {
        std::vector<float> got(size_t(H) * Dv), ref(size_t(H) * Dv);
        for (int h = 0; h < H; h++) {
            for (int e = 0; e < Dv; e++) {
                double y = 0;
                for (int k = 0; k < C; k++)
                    y += double(wuv[(size_t(h) * Dv + e) * C + k]) * outs[i][h * C + k];
                got[h * Dv + e] = float(y);
            }
            std::vector<double> s(lens[i]);
            double mx = -1e300;
            for (int j = 0; j < lens[i]; j++) {
                const float* c = caches[i].data() + size_t(j) * dims.rec();
                double acc = 0;
                for (int d = 0; d < D; d++) {
                    double k = 0;
                    for (int t = 0; t < C; t++)
                        k += double(wuk[(size_t(h) * D + d) * C + t]) * c[t];
                    acc += double(qn[i][h * D + d]) * k;
                }
                for (int r = 0; r < R; r++) acc += double(qp[i][h * R + r]) * c[C + r];
                s[j] = acc * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (auto& x : s) sum += (x = std::exp(x - mx));
            for (int e = 0; e < Dv; e++) {
                double o = 0;
                for (int j = 0; j < lens[i]; j++) {
                    const float* c = caches[i].data() + size_t(j) * dims.rec();
                    double v = 0;
                    for (int t = 0; t < C; t++)
                        v += double(wuv[(size_t(h) * Dv + e) * C + t]) * c[t];
                    o += s[j] / sum * v;
                }
                ref[h * Dv + e] = float(o);
            }
        }
        double e = test::rel_error(got.data(), ref.data(), ref.size());
        EXPECT_LT(e, 1e-5) << "sequence " << i << " (len " << lens[i] << ")";
    }
}

// Heads 3 (one tile of 3), 5 (tiles of 2 and 3), 19 (two 16-lane head groups).
INSTANTIATE_TEST_SUITE_P(Heads, FlashMla, ::testing::Values(3, 5, 19));

// Flash decoding over a K/V cache equals softmax attention in double, for MHA, GQA and MQA head
// layouts, head sizes of the AVX-512 kernel (16, 64) and of the portable one (24), float32 and
// bf16 caches (the latter against the same reference on the rounded cache).
struct KvCase {
    int Hq, Hkv, D;
};
class FlashKv : public ::testing::TestWithParam<KvCase> {};

TEST_P(FlashKv, EqualsSoftmaxAttention) {
    const auto [Hq, Hkv, D] = GetParam();
    const KvCacheDims dims{Hq, Hkv, D};
    const float scale = 1.0f / std::sqrt(float(D));
    const int lens[3] = {1, 77, 1100};  // single token, a partial block, several splits
    for (bool bf16 : {false, true}) {
        std::vector<std::vector<float>> caches, qs, outs;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(lens[i]) * dims.rec(), 70 + i));
            c16.emplace_back(caches.back().size());
            if (bf16)
                for (size_t k = 0; k < caches.back().size(); k++) {
                    c16.back()[k] = float_to_bf16(caches.back()[k]);
                    caches.back()[k] = bf16_to_float(c16.back()[k]);
                }
            qs.push_back(test::random_vector(size_t(Hq) * D, 80 + i));
            outs.emplace_back(size_t(Hq) * D);
        }
        std::vector<const float*> cp, qp;
        std::vector<const uint16_t*> cp16;
        std::vector<float*> op;
        for (int i = 0; i < 3; i++) {
            cp.push_back(caches[i].data());
            cp16.push_back(c16[i].data());
            qp.push_back(qs[i].data());
            op.push_back(outs[i].data());
        }
        if (bf16)
            flash_kv_decode(op.data(), qp.data(), cp16.data(), lens, 3, dims, scale);
        else
            flash_kv_decode(op.data(), qp.data(), cp.data(), lens, 3, dims, scale);
        const int group = Hq / Hkv;
        for (int i = 0; i < 3; i++) {
            std::vector<float> ref(size_t(Hq) * D);
            for (int h = 0; h < Hq; h++) {
                const int kv = h / group;
                std::vector<double> s(lens[i]);
                double mx = -1e300;
                for (int j = 0; j < lens[i]; j++) {
                    const float* k = caches[i].data() + size_t(j) * dims.rec() + size_t(kv) * D;
                    double acc = 0;
                    for (int d = 0; d < D; d++) acc += double(qs[i][h * D + d]) * k[d];
                    s[j] = acc * scale;
                    mx = std::max(mx, s[j]);
                }
                double sum = 0;
                for (auto& x : s) sum += (x = std::exp(x - mx));
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < lens[i]; j++)
                        o += s[j] / sum *
                             caches[i][size_t(j) * dims.rec() + size_t(Hkv + kv) * D + d];
                    ref[h * D + d] = float(o);
                }
            }
            EXPECT_LT(test::rel_error(outs[i].data(), ref.data(), ref.size()), 1e-5)
                << "sequence " << i << " (len " << lens[i] << ")" << (bf16 ? " bf16" : "");
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Heads, FlashKv,
                         ::testing::Values(KvCase{6, 6, 64}, KvCase{6, 2, 64}, KvCase{6, 1, 64},
                                           KvCase{4, 2, 16}, KvCase{3, 3, 24}));

// FlashTPA on random factors equals forming q, K, V and running softmax attention in double.
struct RankCase {
    int Rq, Rk, Rv, H, D;
};
class FlashTpa : public ::testing::TestWithParam<RankCase> {};

TEST_P(FlashTpa, EqualsMaterializeThenAttend) {
    const auto [Rq, Rk, Rv, H, D] = GetParam();
    const TpaCacheDims dims{H, Rk, Rv, D};
    const float scale = 1.0f / std::sqrt(float(D));
    const int lens[3] = {1, 77, 1100};  // single token, a partial block, several splits
    std::vector<std::vector<float>> caches, qa, qb, outs;
    for (int i = 0; i < 3; i++) {
        caches.push_back(test::random_vector(size_t(lens[i]) * dims.rec(), 10 + i));
        qa.push_back(test::random_vector(size_t(H) * (Rq ? Rq : 1), 20 + i));
        qb.push_back(test::random_vector(size_t(Rq ? Rq : H) * D, 30 + i));
        outs.emplace_back(size_t(H) * D);
    }
    std::vector<TpaQuery> qs;
    std::vector<const float*> cp;
    std::vector<float*> op;
    for (int i = 0; i < 3; i++) {
        qs.push_back(Rq ? TpaQuery{qa[i].data(), qb[i].data(), Rq}
                        : TpaQuery{nullptr, qb[i].data(), 0});
        cp.push_back(caches[i].data());
        op.push_back(outs[i].data());
    }
    flash_tpa_decode(op.data(), qs.data(), cp.data(), lens, 3, dims, scale);
    for (int i = 0; i < 3; i++) {
        // Reference: q_h = 1/Rq sum_r A_Q[h,r] B_Q[r]; k_jh = 1/Rk sum_s A_K B_K; v likewise.
        std::vector<double> q(size_t(H) * D, 0.0);
        for (int h = 0; h < H; h++)
            for (int d = 0; d < D; d++) {
                if (!Rq) {
                    q[h * D + d] = qb[i][h * D + d];
                    continue;
                }
                for (int r = 0; r < Rq; r++)
                    q[h * D + d] += double(qa[i][h * Rq + r]) * qb[i][r * D + d] / Rq;
            }
        std::vector<float> ref(size_t(H) * D);
        for (int h = 0; h < H; h++) {
            std::vector<double> s(lens[i]);
            double mx = -1e300;
            for (int j = 0; j < lens[i]; j++) {
                const float* r = caches[i].data() + size_t(j) * dims.rec();
                double acc = 0;
                for (int d = 0; d < D; d++) {
                    double k = 0;
                    for (int t = 0; t < Rk; t++)
                        k += double(r[dims.ak(h, t)]) * r[dims.off_BK() + t * D + d];
                    acc += q[h * D + d] * k / Rk;
                }
                s[j] = acc * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (auto& x : s) sum += (x = std::exp(x - mx));
            for (int d = 0; d < D; d++) {
                double o = 0;
                for (int j = 0; j < lens[i]; j++) {
                    const float* r = caches[i].data() + size_t(j) * dims.rec();
                    double v = 0;
                    for (int t = 0; t < Rv; t++)
                        v += double(r[dims.av(h, t)]) * r[dims.off_BV() + t * D + d];
                    o += s[j] / sum * v / Rv;
                }
                ref[h * D + d] = float(o);
            }
        }
        double e = test::rel_error(outs[i].data(), ref.data(), ref.size());
        EXPECT_LT(e, 1e-5) << "sequence " << i << " (len " << lens[i] << ")";
    }
}

// Runs FlashTPA over two sequences of a bf16 cache and over the same cache widened to float32,
// with the same query. make_cache(i, values) fills sequence i's float32 records before rounding.
struct Bf16VsF32 {
    std::vector<std::vector<float>> o32, o16;
};
template <typename Fill>
Bf16VsF32 run_bf16_vs_f32(const RankCase& rc, bool round_query, Fill fill) {
    const auto [Rq, Rk, Rv, H, D] = rc;
    const TpaCacheDims dims{H, Rk, Rv, D};
    const int lens[2] = {45, 700};
    std::vector<std::vector<float>> c32, qa, qb;
    std::vector<std::vector<uint16_t>> c16;
    Bf16VsF32 r;
    for (int i = 0; i < 2; i++) {
        c32.push_back(test::random_vector(size_t(lens[i]) * dims.rec(), 40 + i));
        fill(dims, lens[i], c32.back());
        c16.emplace_back(c32.back().size());
        for (size_t k = 0; k < c32.back().size(); k++) {
            c16.back()[k] = float_to_bf16(c32.back()[k]);
            c32.back()[k] = bf16_to_float(c16.back()[k]);
        }
        qa.push_back(test::random_vector(size_t(H) * (Rq ? Rq : 1), 50 + i));
        qb.push_back(test::random_vector(size_t(Rq ? Rq : H) * D, 60 + i));
        if (round_query)
            for (float& x : qb.back()) x = bf16_to_float(float_to_bf16(x));
        r.o32.emplace_back(size_t(H) * D);
        r.o16.emplace_back(size_t(H) * D);
    }
    std::vector<TpaQuery> qs;
    std::vector<const float*> p32;
    std::vector<const uint16_t*> p16;
    std::vector<float*> a32, a16;
    for (int i = 0; i < 2; i++) {
        qs.push_back(Rq ? TpaQuery{qa[i].data(), qb[i].data(), Rq}
                        : TpaQuery{nullptr, qb[i].data(), 0});
        p32.push_back(c32[i].data());
        p16.push_back(c16[i].data());
        a32.push_back(r.o32[i].data());
        a16.push_back(r.o16[i].data());
    }
    flash_tpa_decode(a32.data(), qs.data(), p32.data(), lens, 2, dims, 0.125f);
    flash_tpa_decode(a16.data(), qs.data(), p16.data(), lens, 2, dims, 0.125f);
    return r;
}

// The bf16 cache kernel against the float32 kernel on the same (bf16-rounded) cache and a
// bf16-representable query. On CPUs with AVX-512 BF16 the bf16 kernel multiplies in bf16
// (vdpbf16ps: exact products, float32 sums), so its scores match; the one rounding left is that
// of the value weights p*A_V/R_V to bf16 (relative 2^-9 each; 2e-4 to 1.8e-3 here measured).
// Without those instructions (or with T6_BF16_DOT=off: core/simd.h) the block is widened to
// float32 and the results agree to float rounding. Both ways run where the CPU has both.
TEST_P(FlashTpa, Bf16CacheMatchesF32UpToBf16ValueWeights) {
    for (Bf16DotDecode mode : {Bf16DotDecode::on, Bf16DotDecode::off}) {
        ScopedBf16DotDecode scoped(mode);
        const auto r = run_bf16_vs_f32(GetParam(), true, [](const TpaCacheDims&, int, auto&) {});
        const double tol = simd_bf16_dot_decode() ? 4e-3 : 1e-5;
        for (int i = 0; i < 2; i++)
            EXPECT_LT(test::rel_error(r.o16[i].data(), r.o32[i].data(), r.o32[i].size()), tol)
                << flash_tpa_kernel_name(true);
    }
}

// With A_K = 0 every score is 0, so the softmax is uniform and, for R_V a power of two, every value
// weight p*A_V/R_V (p = e^0 = 1 within a block) is exact in bf16: the bf16 kernel's value path
// (pairing of rows, vdpbf16ps tiles, block rescaling) must then equal float32 to rounding.
TEST_P(FlashTpa, Bf16CacheValuesExactUnderUniformScores) {
    const int Rv = GetParam().Rv;
    if (Rv & (Rv - 1)) GTEST_SKIP() << "R_V = " << Rv << ": 1/R_V is not exact in bf16";
    for (Bf16DotDecode mode : {Bf16DotDecode::on, Bf16DotDecode::off}) {
        ScopedBf16DotDecode scoped(mode);
        const auto r = run_bf16_vs_f32(GetParam(), false,
                                       [](const TpaCacheDims& dm, int len, std::vector<float>& c) {
                                           for (int j = 0; j < len; j++)
                                               for (int s = 0; s < dm.Rk; s++)
                                                   for (int h = 0; h < dm.H; h++)
                                                       c[size_t(j) * dm.rec() + dm.ak(h, s)] = 0;
                                       });
        for (int i = 0; i < 2; i++)
            EXPECT_LT(test::rel_error(r.o16[i].data(), r.o32[i].data(), r.o32[i].size()), 1e-6)
                << flash_tpa_kernel_name(true);
    }
}

// (R_Q, R_K, R_V, heads, head size): one and several 16-lane head groups and 6-head value tiles
// (H 5, 17, 34), ranks 1-4 (R 2 and others take different de-interleaving paths), head sizes
// that are a multiple of 64, of 16 only (masked column tiles) and of neither (portable kernel).
INSTANTIATE_TEST_SUITE_P(Ranks, FlashTpa,
                         ::testing::Values(RankCase{6, 2, 2, 5, 64}, RankCase{1, 1, 1, 5, 64},
                                           RankCase{4, 3, 1, 17, 64}, RankCase{2, 1, 4, 5, 64},
                                           RankCase{6, 2, 2, 34, 64}, RankCase{3, 2, 3, 7, 48},
                                           RankCase{2, 2, 2, 6, 128}, RankCase{2, 2, 1, 3, 24},
                                           RankCase{6, 2, 2, 61, 64},  // 4 head groups
                                           RankCase{0, 2, 2, 5, 64},   // 0: full q (T6_kvonly)
                                           RankCase{0, 1, 2, 34, 64}));

}  // namespace
