// The paged KV cache (docs/paged-cache.md): decoding through block tables equals decoding from
// the contiguous cache for every attention kind and both element types (sequences spanning many
// blocks, block sizes that do not divide the lengths, mixed batches, the decoding kernels' task
// split across threads); sharing cached prefix blocks gives the logits of computing them; blocks
// return to the pool, cached ones are evicted least recently used first, a shared block that
// would be written is copied.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "infer/decoder.h"
#include "kernels/flash_decode.h"
#include "model/block_pool.h"
#include "model/model.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

// One thread: these steps are tiny, and on a shared machine a second OpenMP thread mostly waits
// (the kernels still split each cache into several tasks, merged as with more threads).
const bool kOneThread = (set_num_threads(1), true);

std::vector<int32_t> random_tokens(int n, int V, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = int32_t(rng() % unsigned(V));
    return t;
}

struct Case {
    const char* name;
    AttentionKind kind;
    CacheType type;
    int block_tokens;
};

class PagedDecode : public ::testing::TestWithParam<Case> {};

// Three sequences of different lengths prefilled in chunks, then batched steps (one sequence
// joining late), paged vs contiguous: the same logits.
TEST_P(PagedDecode, EqualsContiguous) {
    const Case& c = GetParam();
    ModelConfig cfg = test::tiny_test_config(c.kind);
    Model model(cfg);
    test::randomize_weights(model, 11);
    const int V = cfg.vocab_size, max_seq = 128;
    Decoder ref(model, 3, max_seq, c.type);
    // A pool with spare blocks, so the block ids of a sequence are not consecutive.
    Decoder paged(
        model, 3, max_seq, c.type, WeightType::f32,
        CachePaging{c.block_tokens, 3L * ((max_seq + c.block_tokens - 1) / c.block_tokens)});
    ref.chunk_tokens = paged.chunk_tokens = 9;
    const int prompts[3] = {37, 12, 70};
    std::vector<float> a(size_t(V) * 3), b(size_t(V) * 3);
    // Interleave the prefills so the sequences' blocks interleave in the pool.
    for (int s = 0; s < 3; s++) {
        auto toks = random_tokens(prompts[s], V, 100 + unsigned(s));
        for (int done = 0; done < prompts[s];) {
            const int m = std::min(13, prompts[s] - done);
            ref.append(s, toks.data() + done, m, a.data());
            paged.append(s, toks.data() + done, m, b.data());
            done += m;
            ASSERT_LT(test::rel_error(a.data(), b.data(), size_t(V)), 1e-5) << c.name;
        }
    }
    std::mt19937 rng(5);
    for (int step = 0; step < 24; step++) {
        std::vector<int> slots = {0, 2};
        if (step >= 6) slots.push_back(1);
        std::vector<int32_t> toks(slots.size());
        for (auto& t : toks) t = int32_t(rng() % unsigned(V));
        const int n = int(slots.size());
        ref.step(slots.data(), toks.data(), n, a.data());
        paged.step(slots.data(), toks.data(), n, b.data());
        ASSERT_LT(test::rel_error(a.data(), b.data(), size_t(n) * V), 1e-5)
            << c.name << " step " << step;
    }
    EXPECT_EQ(paged.cache().length(2), 70 + 24);
    EXPECT_EQ(int(paged.cache().table(2).size()), paged.cache().blocks_for(70 + 24));
    // Every block goes back to the pool.
    for (int s = 0; s < 3; s++) paged.reset(s);
    EXPECT_EQ(paged.cache().pool().free_blocks(), paged.cache().pool().size());
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, PagedDecode,
    ::testing::Values(Case{"mha_f32_b5", AttentionKind::mha, CacheType::f32, 5},
                      Case{"mha_bf16_b16", AttentionKind::mha, CacheType::bf16, 16},
                      Case{"mqa_f32_b7", AttentionKind::mqa, CacheType::f32, 7},
                      Case{"gqa_f32_b16", AttentionKind::gqa, CacheType::f32, 16},
                      Case{"tpa_f32_b5", AttentionKind::tpa, CacheType::f32, 5},
                      // B_K grouped (blocks of whole groups of 16 tokens, kernels/flash_decode.h)
                      Case{"tpa_f32_b16", AttentionKind::tpa, CacheType::f32, 16},
                      Case{"tpa_kvonly_f32_b32", AttentionKind::tpa_kvonly, CacheType::f32, 32},
                      Case{"tpa_bf16_b32", AttentionKind::tpa, CacheType::bf16, 32},
                      Case{"tpa_kvonly_f32_b11", AttentionKind::tpa_kvonly, CacheType::f32, 11},
                      Case{"mla_f32_b6", AttentionKind::mla, CacheType::f32, 6},
                      Case{"mla_bf16_b16", AttentionKind::mla, CacheType::bf16, 16}),
    [](const auto& info) { return std::string(info.param.name); });

// The kernels alone at lengths where the cache is split across threads, records in shuffled
// blocks of a size that divides neither the lengths nor the kernels' own blocks.
template <typename Run>
void check_kernel(long rec, int H, int Dv, Run run) {
    const int lens[3] = {1500, 333, 2049};
    const int B = 48;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<std::vector<float>> contig(3);
    std::vector<std::vector<int>> tables(3);
    int blocks = 0;
    for (int i = 0; i < 3; i++) blocks += (lens[i] + B - 1) / B;
    std::vector<int> perm(static_cast<size_t>(blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<float> pool(size_t(blocks) * B * rec);
    int next = 0;
    for (int i = 0; i < 3; i++) {
        contig[i].resize(size_t(lens[i]) * rec);
        for (auto& x : contig[i]) x = u(rng);
        for (int k = 0; k * B < lens[i]; k++) {
            const int b = perm[size_t(next++)];
            tables[i].push_back(b);
            const int n = std::min(B, lens[i] - k * B);
            std::memcpy(&pool[size_t(b) * B * rec], &contig[i][size_t(k) * B * rec],
                        sizeof(float) * size_t(n) * rec);
        }
    }
    std::vector<CacheBlocks<float>> views(3);
    std::vector<const float*> ptrs(3);
    for (int i = 0; i < 3; i++) {
        views[i] = CacheBlocks<float>{pool.data(), tables[i].data(), long(B) * rec, B};
        ptrs[i] = contig[i].data();
    }
    std::vector<std::vector<float>> o1(3, std::vector<float>(size_t(H) * Dv)), o2 = o1;
    float* out1[3] = {o1[0].data(), o1[1].data(), o1[2].data()};
    float* out2[3] = {o2[0].data(), o2[1].data(), o2[2].data()};
    run(out1, ptrs.data(), static_cast<const CacheBlocks<float>*>(nullptr), lens);
    run(out2, static_cast<const float* const*>(nullptr), views.data(), lens);
    for (int i = 0; i < 3; i++)
        EXPECT_LT(test::rel_error(o1[i].data(), o2[i].data(), o1[i].size()), 1e-5) << "seq " << i;
}

// At every SIMD target this CPU supports (the vector kernels and the portable ones).
TEST(PagedKernels, FlashKvTpaMlaReadThroughBlockTables) {
    for (SimdTarget target : simd_available_targets()) {
        SCOPED_TRACE(simd_target_name(target));
        ScopedSimdTarget scoped(target);
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        // GQA, and MQA over 23 heads (blocks of 32 tokens on AVX-512: cut by the 48-token blocks).
        for (const KvCacheDims dims : {KvCacheDims{8, 2, 64}, KvCacheDims{23, 1, 64}}) {
            const size_t qn = size_t(dims.Hq) * 64;
            std::vector<float> q(3 * qn);
            for (auto& x : q) x = u(rng);
            const float* qs[3] = {&q[0], &q[qn], &q[2 * qn]};
            check_kernel(dims.rec(), dims.Hq, 64,
                         [&](float* const* out, const float* const* p, const CacheBlocks<float>* v,
                             const int* lens) {
                             if (p)
                                 flash_kv_decode(out, qs, p, lens, 3, dims, 0.125f);
                             else
                                 flash_kv_decode(out, qs, v, lens, 3, dims, 0.125f);
                         });
        }
        {
            const TpaCacheDims dims{8, 2, 2, 64};
            std::vector<float> A(size_t(3) * 8 * 4), Bq(size_t(3) * 4 * 64);
            for (auto& x : A) x = u(rng);
            for (auto& x : Bq) x = u(rng);
            TpaQuery qs[3];
            for (int i = 0; i < 3; i++)
                qs[i] = TpaQuery{&A[size_t(i) * 32], &Bq[size_t(i) * 256], 4};
            check_kernel(dims.rec(), 8, 64,
                         [&](float* const* out, const float* const* p, const CacheBlocks<float>* v,
                             const int* lens) {
                             if (p)
                                 flash_tpa_decode(out, qs, p, lens, 3, dims, 0.125f);
                             else
                                 flash_tpa_decode(out, qs, v, lens, 3, dims, 0.125f);
                         });
        }
        {
            const MlaCacheDims dims{5, 32, 8};
            std::vector<float> q(size_t(3) * 5 * 40);
            for (auto& x : q) x = u(rng);
            const float* qs[3] = {&q[0], &q[200], &q[400]};
            check_kernel(dims.rec(), 5, 32,
                         [&](float* const* out, const float* const* p, const CacheBlocks<float>* v,
                             const int* lens) {
                             if (p)
                                 flash_mla_decode(out, qs, p, lens, 3, dims, 0.15f);
                             else
                                 flash_mla_decode(out, qs, v, lens, 3, dims, 0.15f);
                         });
        }
    }
}

// A sequence whose prompt starts with another's full blocks shares them and gets the logits it
// would compute itself; the shared blocks are held twice, and stay cached after both end.
TEST(PrefixCache, SharedPrefixGivesTheSameLogits) {
    for (AttentionKind kind : {AttentionKind::tpa, AttentionKind::mha, AttentionKind::mla}) {
        ModelConfig cfg = test::tiny_test_config(kind);
        Model model(cfg);
        test::randomize_weights(model, 4);
        const int V = cfg.vocab_size, B = 8;
        Decoder dec(model, 2, 128, CacheType::f32, WeightType::f32, CachePaging{B, 40});
        dec.cache().set_prefix_caching(true);
        Decoder alone(model, 1, 128, CacheType::f32);
        auto prefix = random_tokens(43, V, 1);  // 5 full blocks and 3 tokens
        auto p1 = prefix, p2 = prefix;
        for (int32_t t : random_tokens(9, V, 2)) p1.push_back(t);
        for (int32_t t : random_tokens(6, V, 3)) p2.push_back(t);
        std::vector<float> l1(static_cast<size_t>(V)), l2(static_cast<size_t>(V)),
            ref(static_cast<size_t>(V));
        EXPECT_EQ(dec.cache().share_prefix(0, p1.data(), int(p1.size())), 0);
        dec.append(0, p1.data(), int(p1.size()), l1.data());
        const long used_one = dec.cache().pool().used_blocks();
        const int shared = dec.cache().share_prefix(1, p2.data(), int(p2.size()));
        EXPECT_EQ(shared, 40);  // the 5 full blocks of the common prefix
        EXPECT_EQ(dec.cache().length(1), 40);
        dec.append(1, p2.data() + shared, int(p2.size()) - shared, l2.data());
        EXPECT_EQ(dec.cache().pool().used_blocks(), used_one + 2);  // only the 9 new tokens' blocks
        EXPECT_EQ(dec.cache().pool().refs(dec.cache().table(1)[0]), 2);
        alone.append(0, p2.data(), int(p2.size()), ref.data());
        EXPECT_LT(test::rel_error(l2.data(), ref.data(), size_t(V)), 1e-5);
        // Decoding on from the shared prefix.
        for (int i = 0; i < 5; i++) {
            const int32_t t = int32_t((7 * i + 3) % V);
            int s = 1, s0 = 0;
            dec.step(&s, &t, 1, l2.data());
            alone.step(&s0, &t, 1, ref.data());
            EXPECT_LT(test::rel_error(l2.data(), ref.data(), size_t(V)), 1e-5) << "step " << i;
        }
        EXPECT_EQ(dec.cache().prefix_stats().hit_blocks, 5u);
        EXPECT_EQ(dec.cache().prefix_stats().hit_tokens, 40u);
        dec.reset(0);
        dec.reset(1);
        EXPECT_EQ(dec.cache().pool().free_blocks(), 40);
        EXPECT_GE(dec.cache().pool().cached_blocks(), 5);
        // A third sequence finds the prefix again after both ended.
        EXPECT_EQ(dec.cache().share_prefix(0, p2.data(), int(p2.size())), 48);
        dec.reset(0);
    }
}

TEST(PrefixCache, NeverSharesThePromptsLastToken) {
    ModelConfig cfg = test::tiny_test_config(AttentionKind::tpa);
    Model model(cfg);
    test::randomize_weights(model, 4);
    Decoder dec(model, 2, 64, CacheType::f32, WeightType::f32, CachePaging{4, 20});
    dec.cache().set_prefix_caching(true);
    auto p = random_tokens(8, cfg.vocab_size, 1);
    std::vector<float> l(static_cast<size_t>(cfg.vocab_size));
    dec.append(0, p.data(), 8, l.data());
    EXPECT_EQ(dec.cache().share_prefix(1, p.data(), 8), 4);  // 8 cached, the 8th recomputed
}

TEST(BlockPool, FreeListThenLruEviction) {
    BlockPool pool(3, 4);
    const int32_t ids[4] = {1, 2, 3, 4};
    const int a = pool.allocate(), b = pool.allocate();
    const uint64_t h = BlockPool::hash(0, ids, 4);
    EXPECT_TRUE(pool.publish(a, h, 0, ids));
    EXPECT_FALSE(pool.publish(b, h, 0, ids));  // the name is taken
    pool.release(a);                           // cached: free but reusable
    pool.release(b);
    EXPECT_EQ(pool.free_blocks(), 3);
    EXPECT_EQ(pool.cached_blocks(), 1);
    EXPECT_EQ(pool.lookup(h, 0, ids), a);
    const int32_t other[4] = {1, 2, 3, 5};
    EXPECT_EQ(pool.lookup(h, 0, other), -1);  // a collision is a miss
    // The never-used and unnamed blocks go first, the cached one last.
    const int c = pool.allocate(), d = pool.allocate();
    EXPECT_NE(c, a);
    EXPECT_NE(d, a);
    EXPECT_EQ(pool.lookup(h, 0, ids), a);
    EXPECT_EQ(pool.allocate(), a);  // evicted
    EXPECT_EQ(pool.lookup(h, 0, ids), -1);
    EXPECT_EQ(pool.allocate(), -1);
    EXPECT_EQ(pool.free_blocks(), 0);
}

// Shrinking a sequence into a block it shares copies that block first (copy-on-write), so the
// other holder's records are never overwritten.
TEST(PrefixCache, ShrinkIntoASharedBlockCopiesIt) {
    ModelConfig cfg = test::tiny_test_config(AttentionKind::gqa);
    Model model(cfg);
    test::randomize_weights(model, 4);
    const int V = cfg.vocab_size;
    Decoder dec(model, 2, 64, CacheType::f32, WeightType::f32, CachePaging{4, 20});
    dec.cache().set_prefix_caching(true);
    auto p = random_tokens(13, V, 1);
    std::vector<float> l(static_cast<size_t>(V)), ref(static_cast<size_t>(V));
    dec.append(0, p.data(), 13, l.data());
    ASSERT_EQ(dec.cache().share_prefix(1, p.data(), 13), 12);
    const int shared = dec.cache().table(1)[2];
    dec.cache().set_length(1, 10);  // into block 2, shared with slot 0
    EXPECT_NE(dec.cache().table(1)[2], shared);
    EXPECT_EQ(dec.cache().pool().refs(shared), 1);
    const int32_t t = 5;
    dec.append(1, &t, 1, l.data());  // overwrites position 10 of slot 1 only
    int s0 = 0;
    dec.step(&s0, &t, 1, l.data());
    Decoder alone(model, 1, 64, CacheType::f32);
    alone.append(0, p.data(), 13, ref.data());
    int z = 0;
    alone.step(&z, &t, 1, ref.data());
    EXPECT_LT(test::rel_error(l.data(), ref.data(), size_t(V)), 1e-5);
}

TEST(PagedDecode, PoolExhaustionIsAnErrorNotACrash) {
    ModelConfig cfg = test::tiny_test_config(AttentionKind::tpa);
    Model model(cfg);
    test::randomize_weights(model, 4);
    Decoder dec(model, 2, 64, CacheType::f32, WeightType::f32, CachePaging{4, 3});
    auto p = random_tokens(12, cfg.vocab_size, 1);
    std::vector<float> l(static_cast<size_t>(cfg.vocab_size));
    dec.append(0, p.data(), 12, l.data());
    EXPECT_EQ(dec.cache().pool().free_blocks(), 0);
    int s = 0;
    EXPECT_THROW(dec.step(&s, p.data(), 1, l.data()), Error);
    EXPECT_EQ(dec.cache().length(0), 12);  // nothing half-done
    EXPECT_THROW(dec.append(1, p.data(), 1, l.data()), Error);
    dec.reset(0);
    EXPECT_EQ(dec.cache().pool().free_blocks(), 3);
}

}  // namespace
