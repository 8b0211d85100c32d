// The 8-bit KV cache (`--cache q8`, kernels/q8_cache.h, docs/quantization.md):
//  * the record format: per-row absmax scales, |x - dequantized| <= scale/2, scales at the
//    record's end, the vector dequantizer bit-identical to the scalar one on every SIMD target;
//  * the three decoding kernels over q8 records (paged, a block size that does not divide the
//    lengths) equal double-precision references on the scalar-dequantized records (<= 1e-5
//    relative) at every SIMD target;
//  * decoding every kind with a q8 cache, paged and contiguous, equals decoding with an f32 cache
//    that holds exactly the dequantized rows (KVCache::set_q8_rounding) to 1e-4;
//  * prefix sharing and preemption (clear, then recompute) work on q8 blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_reference.h"
#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "infer/decoder.h"
#include "kernels/flash_decode.h"
#include "kernels/q8_cache.h"
#include "model/model.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

const bool kOneThread = (set_num_threads(1), true);

const int kLens[3] = {1, 45, 300};  // one token, partial blocks, several chunks and splits
const int kB = 7;                   // cache block tokens: divides none of the lengths

std::vector<int32_t> random_tokens(int n, int V, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = int32_t(rng() % unsigned(V));
    return t;
}

// A paged q8 cache of `len` random records: blocks of kB tokens in a pool laid out in reverse
// (the block table is not the identity), plus the scalar-dequantized records (len, numbers).
struct PagedQ8 {
    std::vector<int8_t> pool;
    std::vector<int> table;
    std::vector<float> deq;
    CacheBlocks<int8_t> view(const Q8Layout& L) const {
        return CacheBlocks<int8_t>{pool.data(), table.data(), long(kB) * L.bytes, kB};
    }
};

PagedQ8 make_paged(const Q8Layout& L, int len, unsigned seed) {
    PagedQ8 p;
    const int blocks = (len + kB - 1) / kB;
    p.pool.assign(size_t(blocks) * kB * L.bytes, 0);
    for (int k = 0; k < blocks; k++) p.table.push_back(blocks - 1 - k);
    const std::vector<float> x = test::random_vector(size_t(len) * L.numbers, seed);
    p.deq.resize(x.size());
    for (int j = 0; j < len; j++) {
        int8_t* rec = p.pool.data() +
                      (size_t(p.table[size_t(j / kB)]) * kB + size_t(j % kB)) * size_t(L.bytes);
        q8_quantize_record(rec, x.data() + size_t(j) * L.numbers, L);
        q8_dequantize_records_scalar(p.deq.data() + size_t(j) * L.numbers, rec, 1, L);
    }
    return p;
}

std::string target_label(SimdTarget t) {
    return std::string("target ") + simd_target_name(t);
}

using test::softmax_apply;

// Runs decode(outs, views) at every target and compares with refs.
template <typename Decode>
void expect_every_target(const std::vector<std::vector<float>>& refs, Decode decode,
                         const char* what) {
    for (SimdTarget target : simd_available_targets()) {
        ScopedSimdTarget scoped(target);
        std::vector<std::vector<float>> outs(3, std::vector<float>(refs[0].size(), -1.0f));
        std::vector<float*> op;
        for (auto& o : outs) op.push_back(o.data());
        decode(op.data());
        for (int i = 0; i < 3; i++)
            EXPECT_LT(test::rel_error(outs[i].data(), refs[i].data(), refs[i].size()), 1e-5)
                << what << ", " << target_label(target) << ", len " << kLens[i];
    }
}

// Runs kernel(out, queries, views) -- a decoding kernel over the three paged q8 caches with one
// query each -- at every target and compares with refs.
template <typename Kernel>
void expect_q8_kernel(const std::vector<std::vector<float>>& refs,
                      const std::vector<PagedQ8>& caches, const Q8Layout& L,
                      const std::vector<std::vector<float>>& qs, Kernel kernel,
                      const std::string& what) {
    expect_every_target(
        refs,
        [&](float* const* o) {
            std::vector<CacheBlocks<int8_t>> v;
            std::vector<const float*> q;
            for (int i = 0; i < 3; i++) v.push_back(caches[i].view(L)), q.push_back(qs[i].data());
            kernel(o, q.data(), v.data());
        },
        what.c_str());
}

}  // namespace

TEST(Q8Format, RowScalesBoundTheErrorAndSitAtTheEnd) {
    const Q8Layout L = q8_layout(std::vector<int>{5, 0, 16, 3});
    EXPECT_EQ(L.rows.size(), 3u);  // the empty row dropped
    EXPECT_EQ(L.numbers, 24);
    EXPECT_EQ(L.scale_off, 24);
    EXPECT_EQ(L.bytes, 24 + 12);
    const Q8Layout odd = q8_layout(std::vector<int>{5, 2});
    EXPECT_EQ(odd.scale_off, 8);  // codes padded to 4 bytes
    EXPECT_EQ(odd.bytes, 16);
    std::vector<float> x = test::random_vector(24, 3, 5.0f);
    for (int i = 21; i < 24; i++) x[size_t(i)] = 0.0f;  // an all-zero row: scale 0, codes 0
    x[7] = -50.0f;                                      // the absmax of row 1, negative
    std::vector<int8_t> rec(size_t(L.bytes));
    q8_quantize_record(rec.data(), x.data(), L);
    std::vector<float> y(24);
    q8_dequantize_records_scalar(y.data(), rec.data(), 1, L);
    int off = 0;
    for (size_t r = 0; r < L.rows.size(); r++) {
        float amax = 0, scale;
        for (int i = off; i < off + L.rows[r]; i++) amax = std::max(amax, std::fabs(x[size_t(i)]));
        std::memcpy(&scale, rec.data() + L.scale_off + 4 * long(r), 4);
        EXPECT_FLOAT_EQ(scale, amax / 127.0f) << "row " << r;
        for (int i = off; i < off + L.rows[r]; i++)
            EXPECT_LE(std::fabs(x[size_t(i)] - y[size_t(i)]), 0.5f * scale * (1 + 1e-6f) + 1e-30f);
        off += L.rows[r];
    }
    EXPECT_EQ(rec[7], -127);
    EXPECT_EQ(y[21], 0.0f);
}

// A row holding NaN or inf dequantizes to NaN (as a float cache would pass them on); the other
// rows are unaffected.
TEST(Q8Format, NonFiniteRowsStayNonFinite) {
    const Q8Layout L = q8_layout(std::vector<int>{4, 4, 4});
    std::vector<float> x = {1, 2, 3, 4, 1, NAN, 3, 4, 1, INFINITY, 3, 4};
    std::vector<int8_t> rec(size_t(L.bytes));
    q8_quantize_record(rec.data(), x.data(), L);
    std::vector<float> y(12);
    q8_dequantize_records_scalar(y.data(), rec.data(), 1, L);
    EXPECT_FLOAT_EQ(y[3], 4.0f);
    EXPECT_TRUE(std::isnan(y[5]));
    EXPECT_FALSE(std::isfinite(y[9]));
}

TEST(Q8Format, VectorDequantizeIsBitExactOnEveryTarget) {
    const Q8Layout L = q8_layout(TpaCacheDims{5, 2, 3, 40});  // rows of 5 and 40 numbers
    const PagedQ8 p = make_paged(L, 21, 9);
    for (SimdTarget target : simd_available_targets()) {
        ScopedSimdTarget scoped(target);
        std::vector<float> a(size_t(7) * L.numbers), b(a.size());
        const int8_t* blk = p.pool.data();
        q8_dequantize_records(a.data(), blk, 7, L);
        q8_dequantize_records_scalar(b.data(), blk, 7, L);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << target_label(target);
    }
}

// The K/V attention of one query over `len` dequantized records c (K heads, then V heads), in
// double: the reference of the q8 K/V kernel tests.
static std::vector<float> kv_reference(const float* c, const KvCacheDims& dims,
                                       const std::vector<float>& q, int len, float scale) {
    const int group = dims.Hq / dims.Hkv, D = dims.D;
    std::vector<float> ref(size_t(dims.Hq) * D);
    for (int h = 0; h < dims.Hq; h++) {
        const int kv = h / group;
        std::vector<double> s(static_cast<size_t>(len));
        for (int j = 0; j < len; j++) {
            double acc = 0;
            for (int d = 0; d < D; d++)
                acc +=
                    double(q[size_t(h) * D + d]) * c[size_t(j) * dims.rec() + size_t(kv) * D + d];
            s[size_t(j)] = acc * scale;
        }
        softmax_apply(
            s, D,
            [&](int j, int d) {
                return double(c[size_t(j) * dims.rec() + size_t(dims.Hkv + kv) * D + d]);
            },
            ref.data() + size_t(h) * D);
    }
    return ref;
}

TEST(Q8Kernels, FlashKvEqualsReference) {
    // MHA with 12 and 9 heads: 24 and 18 row scales per record, transposed in several vectors'
    // columns on every target, the last one partial for 18 (BlockRowScales).
    for (const KvCacheDims dims : {KvCacheDims{6, 2, 64}, KvCacheDims{3, 3, 24},
                                   KvCacheDims{12, 12, 64}, KvCacheDims{9, 9, 32}}) {
        const Q8Layout L = q8_layout(dims);
        const float scale = 1.0f / std::sqrt(float(dims.D));
        const int D = dims.D;
        std::vector<PagedQ8> caches;
        std::vector<std::vector<float>> qs, refs;
        for (int i = 0; i < 3; i++) {
            caches.push_back(make_paged(L, kLens[i], 10 + i));
            qs.push_back(test::random_vector(size_t(dims.Hq) * D, 20 + i));
            refs.push_back(kv_reference(caches[i].deq.data(), dims, qs[i], kLens[i], scale));
        }
        expect_q8_kernel(
            refs, caches, L, qs,
            [&](float* const* o, const float* const* q, const CacheBlocks<int8_t>* v) {
                flash_kv_decode(o, q, v, kLens, 3, dims, scale);
            },
            "kv D" + std::to_string(D));
    }
}

TEST(Q8Kernels, FlashTpaEqualsReference) {
    struct Case {
        int Rq;
        TpaCacheDims dims;
    };
    for (const Case& cs :
         {Case{2, {5, 2, 3, 64}}, Case{0, {6, 2, 2, 32}}, Case{1, {3, 1, 2, 24}},
          // more heads than a vector's lanes (masked A rows past lane 16), D not a multiple
          // of the vector width, then a head size above the in-place kernel's (dequantized chunks)
          Case{3, {20, 3, 1, 40}}, Case{0, {2, 1, 1, 136}},
          // the presets' ranks (on AVX-512 their scores three groups of 16 heads at a time: 3,
          // then 3 + 1)
          Case{6, {34, 2, 2, 64}}, Case{6, {61, 2, 2, 64}}}) {
        const TpaCacheDims dm = cs.dims;
        const Q8Layout L = q8_layout(dm);
        const int H = dm.H, D = dm.D, Rq = cs.Rq;
        const float scale = 1.0f / std::sqrt(float(D));
        std::vector<PagedQ8> caches;
        std::vector<std::vector<float>> qa, qb, refs;
        for (int i = 0; i < 3; i++) {
            caches.push_back(make_paged(L, kLens[i], 30 + i));
            qa.push_back(test::random_vector(size_t(H) * std::max(Rq, 1), 40 + i));
            qb.push_back(test::random_vector(size_t(Rq > 0 ? Rq : H) * D, 50 + i));
            const float* c = caches[i].deq.data();
            std::vector<float> ref(size_t(H) * D);
            for (int h = 0; h < H; h++) {
                std::vector<double> q(size_t(D), 0.0);
                for (int d = 0; d < D; d++) {
                    if (Rq == 0) {
                        q[size_t(d)] = qb[i][size_t(h) * D + d];
                        continue;
                    }
                    for (int r = 0; r < Rq; r++)
                        q[size_t(d)] +=
                            double(qa[i][size_t(h) * Rq + r]) * qb[i][size_t(r) * D + d];
                    q[size_t(d)] /= Rq;
                }
                auto rec = [&](int j) { return c + size_t(j) * dm.rec(); };
                std::vector<double> s(size_t(kLens[i]));
                for (int j = 0; j < kLens[i]; j++) {
                    double acc = 0;
                    for (int d = 0; d < D; d++) {
                        double k = 0;
                        for (int r = 0; r < dm.Rk; r++)
                            k += double(rec(j)[dm.ak(h, r)]) * rec(j)[dm.off_BK() + r * D + d];
                        acc += q[size_t(d)] * k / dm.Rk;
                    }
                    s[size_t(j)] = acc * scale;
                }
                softmax_apply(
                    s, D,
                    [&](int j, int d) {
                        double v = 0;
                        for (int r = 0; r < dm.Rv; r++)
                            v += double(rec(j)[dm.av(h, r)]) * rec(j)[dm.off_BV() + r * D + d];
                        return v / dm.Rv;
                    },
                    ref.data() + size_t(h) * D);
            }
            refs.push_back(ref);
        }
        expect_every_target(
            refs,
            [&](float* const* o) {
                std::vector<CacheBlocks<int8_t>> v;
                std::vector<TpaQuery> q;
                for (int i = 0; i < 3; i++) {
                    v.push_back(caches[i].view(L));
                    q.push_back(Rq > 0 ? TpaQuery{qa[i].data(), qb[i].data(), Rq}
                                       : TpaQuery{nullptr, qb[i].data(), 0});
                }
                flash_tpa_decode(o, q.data(), v.data(), kLens, 3, dm, scale);
            },
            ("tpa Rq" + std::to_string(Rq) + " D" + std::to_string(D)).c_str());
    }
}

// Flash MLA over paged q8 records of shape dims (3 sequences of kLens tokens), every target,
// against the double-precision reference on the dequantized records.
static void expect_mla_q8(const MlaCacheDims& dims, float scale, unsigned seed) {
    const Q8Layout L = q8_layout(dims);
    const long rec = dims.rec();
    std::vector<PagedQ8> caches;
    std::vector<std::vector<float>> qs, refs;
    for (int i = 0; i < 3; i++) {
        caches.push_back(make_paged(L, kLens[i], seed + i));
        qs.push_back(test::random_vector(size_t(dims.H) * rec, seed + 10 + i));
        const float* c = caches[i].deq.data();
        std::vector<float> ref(size_t(dims.H) * dims.C);
        for (int h = 0; h < dims.H; h++) {
            std::vector<double> sc(size_t(kLens[i]));
            for (int j = 0; j < kLens[i]; j++) {
                double acc = 0;
                for (long k = 0; k < rec; k++)
                    acc += double(qs[i][size_t(h) * rec + k]) * c[size_t(j) * rec + k];
                sc[size_t(j)] = acc * scale;
            }
            softmax_apply(
                sc, dims.C, [&](int j, int d) { return double(c[size_t(j) * rec + d]); },
                ref.data() + size_t(h) * dims.C);
        }
        refs.push_back(ref);
    }
    expect_q8_kernel(
        refs, caches, L, qs,
        [&](float* const* o, const float* const* q, const CacheBlocks<int8_t>* v) {
            flash_mla_decode(o, q, v, kLens, 3, dims, scale);
        },
        "mla H" + std::to_string(dims.H) + " C" + std::to_string(dims.C) + " R" +
            std::to_string(dims.R));
}

TEST(Q8Kernels, FlashMlaEqualsReference) {
    for (const MlaCacheDims dims : {MlaCacheDims{5, 64, 8}, MlaCacheDims{19, 40, 8}})
        expect_mla_q8(dims, 0.3f, 60);
}

// ---- Decoding ----
struct KindCase {
    const char* name;
    AttentionKind kind;
};
class Q8Decode : public ::testing::TestWithParam<KindCase> {};

// Two sequences prefilled in chunks (so chunked prefill reads dequantized history), then batched
// steps: a q8 cache equals an f32 cache holding the dequantized rows, paged (blocks of 5
// tokens) and contiguous; the q8 logits stay near the unquantized ones.
TEST_P(Q8Decode, EqualsF32CacheOfDequantizedRows) {
    ModelConfig cfg = test::tiny_test_config(GetParam().kind);
    Model model(cfg);
    test::randomize_weights(model, 5);
    const int V = cfg.vocab_size, max_seq = 64;
    for (int B : {0, 5}) {
        Decoder q8(model, 2, max_seq, CacheType::q8, WeightType::f32, CachePaging{B, 0});
        Decoder ref(model, 2, max_seq, CacheType::f32, WeightType::f32, CachePaging{B, 0});
        Decoder exact(model, 2, max_seq, CacheType::f32);
        ref.cache().set_q8_rounding(true);
        q8.chunk_tokens = ref.chunk_tokens = exact.chunk_tokens = 6;
        std::vector<float> a(size_t(2) * V), b(a.size()), e(a.size());
        for (int s = 0; s < 2; s++) {
            const auto p = random_tokens(13 + 4 * s, V, 7 + s);
            q8.append(s, p.data(), int(p.size()), a.data());
            ref.append(s, p.data(), int(p.size()), b.data());
            exact.append(s, p.data(), int(p.size()), e.data());
            EXPECT_LT(test::rel_error(a.data(), b.data(), size_t(V)), 1e-4) << "prefill " << s;
        }
        const int slots[2] = {0, 1};
        double worst = 0;
        for (int i = 0; i < 12; i++) {
            const int32_t t[2] = {int32_t((5 * i + 1) % V), int32_t((3 * i + 2) % V)};
            q8.step(slots, t, 2, a.data());
            ref.step(slots, t, 2, b.data());
            exact.step(slots, t, 2, e.data());
            EXPECT_LT(test::rel_error(a.data(), b.data(), a.size()), 1e-4)
                << "B " << B << " step " << i;
            worst = std::max(worst, test::rel_error(a.data(), e.data(), a.size()));
        }
        EXPECT_GT(worst, 0.0) << "the q8 cache rounds";
        EXPECT_LT(worst, 0.05) << "B " << B;
    }
}

INSTANTIATE_TEST_SUITE_P(Kinds, Q8Decode,
                         ::testing::Values(KindCase{"mha", AttentionKind::mha},
                                           KindCase{"mqa", AttentionKind::mqa},
                                           KindCase{"gqa", AttentionKind::gqa},
                                           KindCase{"mla", AttentionKind::mla},
                                           KindCase{"t6", AttentionKind::tpa},
                                           KindCase{"t6_kvonly", AttentionKind::tpa_kvonly}),
                         [](const auto& i) { return std::string(i.param.name); });

// Prefix sharing on q8 blocks gives the logits of computing the prefix; a preempted sequence
// (its blocks returned, then recomputed from its tokens) decodes on as if never preempted.
TEST(Q8Paged, PrefixSharingAndPreemption) {
    for (AttentionKind kind : {AttentionKind::tpa, AttentionKind::gqa, AttentionKind::mla}) {
        ModelConfig cfg = test::tiny_test_config(kind);
        Model model(cfg);
        test::randomize_weights(model, 4);
        const int V = cfg.vocab_size;
        Decoder dec(model, 2, 64, CacheType::q8, WeightType::f32, CachePaging{4, 30});
        dec.cache().set_prefix_caching(true);
        Decoder alone(model, 1, 64, CacheType::q8);
        auto p1 = random_tokens(22, V, 1), p2 = p1;
        p2.resize(18);
        for (int32_t t : random_tokens(3, V, 2)) p2.push_back(t);
        std::vector<float> l(static_cast<size_t>(V)), ref(static_cast<size_t>(V));
        dec.append(0, p1.data(), int(p1.size()), l.data());
        const int shared = dec.cache().share_prefix(1, p2.data(), int(p2.size()));
        EXPECT_EQ(shared, 16);
        dec.append(1, p2.data() + shared, int(p2.size()) - shared, l.data());
        alone.append(0, p2.data(), int(p2.size()), ref.data());
        EXPECT_LT(test::rel_error(l.data(), ref.data(), size_t(V)), 1e-5);
        // Preempt slot 1 after two steps, resume by recompute, step on.
        std::vector<int32_t> fed = p2;
        int s1 = 1, s0 = 0;
        for (int i = 0; i < 2; i++) {
            const int32_t t = int32_t(3 * i + 1);
            dec.step(&s1, &t, 1, l.data());
            alone.step(&s0, &t, 1, ref.data());
            fed.push_back(t);
        }
        dec.reset(1);
        // Resumed: the common prefix and slot 1's own full q8 block are found again.
        const int again = dec.cache().share_prefix(1, fed.data(), int(fed.size()));
        EXPECT_EQ(again, 20);
        dec.append(1, fed.data() + again, int(fed.size()) - again, l.data());
        const int32_t t = 9;
        dec.step(&s1, &t, 1, l.data());
        alone.step(&s0, &t, 1, ref.data());
        EXPECT_LT(test::rel_error(l.data(), ref.data(), size_t(V)), 1e-4) << int(kind);
    }
}

TEST(Q8Cache, BytesAndBadTypes) {
    ModelConfig cfg = test::tiny_test_config(AttentionKind::tpa);
    // (Rk + Rv)(H + D) = 5 * 20 = 100 numbers, 2*(2+3) = 10 rows: 100 + 40 bytes.
    EXPECT_EQ(kv_record_bytes(cfg, CacheType::q8), 140);
    EXPECT_EQ(kv_record_bytes(cfg, CacheType::bf16), 200);
    KVCache c(cfg, 1, 10, CacheType::q8);
    EXPECT_EQ(c.bytes_per_token(), size_t(140 * cfg.n_layer));
    EXPECT_EQ(c.bytes(), size_t(140 * cfg.n_layer * 10));
    EXPECT_EQ(parse_cache_type("q8"), CacheType::q8);
    EXPECT_THROW(parse_cache_type("q9"), Error);
}

// The MLA kernel over q8 records read in place (MlaRangeQ8) at the small-mla shape (13 heads in
// 16 lanes, d_c 256, d_h^R 32) and at odd rows (d_c 21 and d_h^R 5: no row, nor the record, a
// multiple of any vector width; codes padded to 28 bytes), against the double reference.
TEST(Q8Kernels, FlashMlaOddShapesEqualReference) {
    for (const MlaCacheDims dims : {MlaCacheDims{13, 256, 32}, MlaCacheDims{3, 21, 5}})
        expect_mla_q8(dims, 1.0f / std::sqrt(float(dims.rec())), 80);
}

// The K/V kernel over q8 records at GQA groups larger than one register tile of heads (22 query
// heads on 2 KV heads: tiles of 6 and 5), MQA over 13 heads and MHA over 13 heads, with the K rows'
// scales grown along the cache (token j's times 1 + j/8) so the running maximum moves many times,
// by steps under and over the kernel's lazy-rescale threshold; against the double reference.
TEST(Q8Kernels, FlashKvGroupTilesAndAMovingMaximumEqualReference) {
    for (const KvCacheDims dims :
         {KvCacheDims{22, 2, 64}, KvCacheDims{13, 1, 64}, KvCacheDims{13, 13, 32}}) {
        const Q8Layout L = q8_layout(dims);
        const float scale = 1.0f / std::sqrt(float(dims.D));
        const int D = dims.D;
        std::vector<PagedQ8> caches;
        std::vector<std::vector<float>> qs, refs;
        for (int i = 0; i < 3; i++) {
            PagedQ8 p = make_paged(L, kLens[i], 40 + i);
            for (int j = 0; j < kLens[i]; j++) {
                int8_t* rec =
                    p.pool.data() +
                    (size_t(p.table[size_t(j / kB)]) * kB + size_t(j % kB)) * size_t(L.bytes);
                for (int r = 0; r < dims.Hkv; r++) {  // rows 0..Hkv-1: the K heads
                    float s;
                    std::memcpy(&s, rec + L.scale_off + 4 * r, 4);
                    s *= 1.0f + float(j) / 8;
                    std::memcpy(rec + L.scale_off + 4 * r, &s, 4);
                }
                q8_dequantize_records_scalar(p.deq.data() + size_t(j) * L.numbers, rec, 1, L);
            }
            caches.push_back(std::move(p));
            qs.push_back(test::random_vector(size_t(dims.Hq) * D, 50 + i));
            refs.push_back(kv_reference(caches[i].deq.data(), dims, qs[i], kLens[i], scale));
        }
        expect_q8_kernel(
            refs, caches, L, qs,
            [&](float* const* o, const float* const* q, const CacheBlocks<int8_t>* v) {
                flash_kv_decode(o, q, v, kLens, 3, dims, scale);
            },
            "kv tiles Hq" + std::to_string(dims.Hq) + " Hkv" + std::to_string(dims.Hkv));
    }
}

// flash K/V (session 10)
// The tokens-in-lanes scores (GQA/MQA over bf16 and q8 caches, groups of 4 or more heads: the K
// block transposed once per KV head as 32-bit words, the heads in chunks of accumulators) and
// q8's V rows widened once per block for several value tiles, over contiguous caches (so full
// 16-token blocks, which the paged caches above, in 7-token blocks, never give): head sizes 128,
// 32 and 64 (two and one word transposes per row, or the row layout where a row is too short),
// groups 5, 9 and 16 (one to three chunks of heads; one to three value tiles), against the double
// reference on the same (dequantized, bf16) numbers, at every target.
TEST(Q8Kernels, FlashKvTokensInLanesEqualReference) {
    const auto to_bf16 = [](float x) {  // round to nearest even (finite x)
        uint32_t u;
        std::memcpy(&u, &x, 4);
        return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    };
    const auto from_bf16 = [](uint16_t b) {
        const uint32_t u = uint32_t(b) << 16;
        float x;
        std::memcpy(&x, &u, 4);
        return x;
    };
    for (const KvCacheDims dims :
         {KvCacheDims{10, 2, 128}, KvCacheDims{9, 1, 32}, KvCacheDims{16, 1, 64}}) {
        const float scale = 1.0f / std::sqrt(float(dims.D));
        const Q8Layout L = q8_layout(dims);
        std::vector<std::vector<int8_t>> c8;
        std::vector<std::vector<uint16_t>> c16;
        std::vector<std::vector<float>> qs, ref8, ref16;
        for (int i = 0; i < 3; i++) {
            const int len = kLens[i];
            const std::vector<float> x = test::random_vector(size_t(len) * L.numbers, 90 + i);
            std::vector<int8_t> r8(size_t(len) * L.bytes);
            std::vector<float> deq(x.size()), b(x.size());
            std::vector<uint16_t> r16(x.size());
            for (int j = 0; j < len; j++)
                q8_quantize_record(r8.data() + size_t(j) * L.bytes,
                                   x.data() + size_t(j) * L.numbers, L);
            q8_dequantize_records_scalar(deq.data(), r8.data(), len, L);
            for (size_t k = 0; k < x.size(); k++) r16[k] = to_bf16(x[k]), b[k] = from_bf16(r16[k]);
            qs.push_back(test::random_vector(size_t(dims.Hq) * dims.D, 95 + i));
            ref8.push_back(kv_reference(deq.data(), dims, qs[i], len, scale));
            ref16.push_back(kv_reference(b.data(), dims, qs[i], len, scale));
            c8.push_back(std::move(r8));
            c16.push_back(std::move(r16));
        }
        std::vector<const float*> q;
        std::vector<const int8_t*> p8;
        std::vector<const uint16_t*> p16;
        for (int i = 0; i < 3; i++)
            q.push_back(qs[i].data()), p8.push_back(c8[i].data()), p16.push_back(c16[i].data());
        const std::string what = "kv in lanes Hq" + std::to_string(dims.Hq) + " Hkv" +
                                 std::to_string(dims.Hkv) + " D" + std::to_string(dims.D);
        expect_every_target(
            ref8,
            [&](float* const* o) {
                flash_kv_decode(o, q.data(), p8.data(), kLens, 3, dims, scale);
            },
            (what + " q8").c_str());
        expect_every_target(
            ref16,
            [&](float* const* o) {
                flash_kv_decode(o, q.data(), p16.data(), kLens, 3, dims, scale);
            },
            (what + " bf16").c_str());
    }
}
