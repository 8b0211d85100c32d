// FlashTPA's float32 cache with B_K grouped (TpaCacheDims::group, kernels/flash_decode.h): each
// aligned group of 16 tokens' B_K numbers stored transposed in the group's B_K slots. The record
// writer and reader are inverse and put every number where bk_at says; the kernel over a grouped
// cache equals the kernel over the same records in place, at every SIMD target, contiguous and
// paged, with the numbers of every record past the sequence (and so the lanes past it in the last
// group) NaN; the decoding split starts every task at a group; the KV cache groups exactly the
// float32 TPA caches whose blocks hold whole groups, and gather_f32 returns the records with B_K
// in place.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/simd.h"
#include "kernels/flash_decode.h"
#include "kernels/flash_decode_common.h"
#include "model/kv_cache.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TpaCacheDims grouped(TpaCacheDims d) {
    d.group = kTpaGroup;
    return d;
}

// n plain records written into a grouped cache of whole groups whose other numbers are NaN.
std::vector<float> write_grouped(const std::vector<float>& plain, int n, const TpaCacheDims& g) {
    const long rec = g.rec();
    std::vector<float> out(size_t(tpa_group_tokens(n)) * rec, kNaN);
    for (int t = 0; t < n; t++)
        write_tpa_record(out.data() + t * rec, t, plain.data() + t * rec, g);
    return out;
}

TEST(TpaGrouped, RecordsWrittenAndReadBackPutEveryNumberWhereBkAtSays) {
    for (const TpaCacheDims d :
         {TpaCacheDims{34, 2, 2, 64}, TpaCacheDims{5, 3, 1, 16}, TpaCacheDims{3, 1, 6, 160}}) {
        ASSERT_TRUE(d.can_group());
        const TpaCacheDims g = grouped(d);
        const int n = 37;  // two whole groups and part of a third
        const long rec = d.rec();
        const std::vector<float> plain = test::random_vector(size_t(n) * rec, 3);
        const std::vector<float> cache = write_grouped(plain, n, g);
        std::vector<float> back(static_cast<size_t>(rec));
        for (int t = 0; t < n; t++) {
            read_tpa_record(back.data(), cache.data() + t * rec, t, g);
            for (long i = 0; i < rec; i++)
                ASSERT_EQ(back[size_t(i)], plain[size_t(t * rec + i)])
                    << "H " << d.H << " token " << t << " number " << i;
            for (int s = 0; s < d.Rk; s++) {
                for (int k = 0; k < d.D; k++) {
                    const float v = plain[size_t(t * rec + d.off_BK() + long(s) * d.D + k)];
                    // From record 0, and from the record of the token's group.
                    ASSERT_EQ(cache[size_t(g.bk_at(t, s, k))], v) << "token " << t;
                    const int g0 = t / kTpaGroup * kTpaGroup;
                    ASSERT_EQ(cache[size_t(g0 * rec + g.bk_at(t - g0, s, k))], v);
                    // Tokens in a row: the next token of the group is the next number.
                    if (t % kTpaGroup + 1 < kTpaGroup) {
                        ASSERT_EQ(g.bk_at(t + 1, s, k), g.bk_at(t, s, k) + 1);
                    }
                }
            }
            // The A and B_V parts stay in the token's own record.
            EXPECT_EQ(cache[size_t(t * rec + d.av(d.H - 1, 0))],
                      plain[size_t(t * rec + d.av(d.H - 1, 0))]);
            EXPECT_EQ(cache[size_t(t * rec + d.off_BV())], plain[size_t(t * rec + d.off_BV())]);
        }
        // In place, bk_at is the record's own B_K row.
        EXPECT_EQ(d.bk_at(5, 1, 2), 5 * rec + d.off_BK() + d.D + 2);
    }
}

struct Shape {
    int Rq, Rk, Rv, H, D;  // Rq 0: a full per-head query (T6_kvonly)
};

// A sequence's cache in the given layout: contiguous, or paged in blocks of `block` tokens
// taken in reverse order from a pool.
struct Cache {
    std::vector<float> pool;
    std::vector<int> table;
    CacheBlocks<float> view(long rec, int block) const {
        if (block == 0) return CacheBlocks<float>::contiguous(pool.data());
        return CacheBlocks<float>{pool.data(), table.data(), long(block) * rec, block};
    }
};

Cache lay_out(const std::vector<float>& records, int n, long rec, int block) {
    Cache c;
    if (block == 0) {
        c.pool = records;
        return c;
    }
    const int blocks = (n + block - 1) / block;
    c.pool.assign(size_t(blocks) * block * rec, kNaN);
    for (int b = 0; b < blocks; b++) c.table.push_back(blocks - 1 - b);
    for (long i = 0; i < long(records.size()) && i < long(blocks) * block * rec; i++) {
        const long t = i / rec;
        c.pool[size_t(long(c.table[size_t(t / block)]) * block * rec + (t % block) * rec +
                      i % rec)] = records[size_t(i)];
    }
    return c;
}

// The kernel over records in place and over the same records grouped, at every target, with
// three sequences per call (lengths below), contiguous and in blocks of 16 and 48 tokens.
TEST(TpaGrouped, KernelEqualsTheRecordsInPlaceAtEveryTargetWithTheRestNaN) {
    const std::vector<int> lens = {1, 15, 16, 17, 77, 1100};
    for (const Shape c : {Shape{6, 2, 2, 34, 64}, Shape{6, 2, 2, 78, 64}, Shape{0, 2, 2, 34, 64},
                          Shape{3, 3, 1, 5, 16}, Shape{2, 1, 2, 3, 160}, Shape{1, 2, 3, 4, 40}}) {
        const TpaCacheDims d{c.H, c.Rk, c.Rv, c.D};
        const TpaCacheDims g = grouped(d);
        const long rec = d.rec();
        const float scale = 1.0f / std::sqrt(float(c.D));
        const std::string shape = "Rq " + std::to_string(c.Rq) + " Rk " + std::to_string(c.Rk) +
                                  " Rv " + std::to_string(c.Rv) + " H " + std::to_string(c.H) +
                                  " D " + std::to_string(c.D);
        std::vector<std::vector<float>> plain, group, qa, qb;
        for (size_t i = 0; i < lens.size(); i++) {
            const int n = lens[i];
            // The plain records, padded with NaN records to whole groups.
            plain.push_back(test::random_vector(size_t(n) * rec, 10 + unsigned(i)));
            group.push_back(write_grouped(plain.back(), n, g));
            plain.back().resize(group.back().size(), kNaN);
            qa.push_back(test::random_vector(size_t(c.H) * (c.Rq ? c.Rq : 1), 20 + unsigned(i)));
            qb.push_back(test::random_vector(size_t(c.Rq ? c.Rq : c.H) * c.D, 30 + unsigned(i)));
        }
        for (SimdTarget target : simd_available_targets()) {
            ScopedSimdTarget scoped(target);
            for (int block : {0, 16, 48}) {
                std::vector<Cache> pc, gc;
                std::vector<CacheBlocks<float>> pv, gv;
                std::vector<TpaQuery> qs;
                for (size_t i = 0; i < lens.size(); i++) {
                    pc.push_back(lay_out(plain[i], lens[i], rec, block));
                    gc.push_back(lay_out(group[i], lens[i], rec, block));
                    qs.push_back(c.Rq ? TpaQuery{qa[i].data(), qb[i].data(), c.Rq}
                                      : TpaQuery{nullptr, qb[i].data(), 0});
                }
                for (size_t i = 0; i < lens.size(); i++) {
                    pv.push_back(pc[i].view(rec, block));
                    gv.push_back(gc[i].view(rec, block));
                }
                const size_t HD = size_t(c.H) * c.D;
                std::vector<std::vector<float>> po(lens.size(), std::vector<float>(HD, -1.0f));
                std::vector<std::vector<float>> go = po;
                std::vector<float*> pp, gp;
                for (size_t i = 0; i < lens.size(); i++) {
                    pp.push_back(po[i].data());
                    gp.push_back(go[i].data());
                }
                const int nseq = int(lens.size());
                flash_tpa_decode(pp.data(), qs.data(), pv.data(), lens.data(), nseq, d, scale);
                flash_tpa_decode(gp.data(), qs.data(), gv.data(), lens.data(), nseq, g, scale);
                for (size_t i = 0; i < lens.size(); i++) {
                    for (size_t k = 0; k < HD; k++)
                        ASSERT_TRUE(std::isfinite(go[i][k]))
                            << shape << ", target " << simd_target_name(target) << ", block "
                            << block << ", len " << lens[i] << ", output " << k;
                    EXPECT_LT(test::rel_error(go[i].data(), po[i].data(), HD), 1e-5)
                        << shape << ", target " << simd_target_name(target) << ", block " << block
                        << ", len " << lens[i];
                }
            }
        }
    }
}

TEST(TpaGrouped, DecodeSplitStartsEveryTaskAtAGroup) {
    const std::vector<int> lens = {1000, 0, 5000, 77, 300, 70000, 15, 16, 17};
    for (int threads : {1, 2, 3, 8}) {
        const flash_detail::TaskPlan plan =
            flash_detail::make_tasks(lens.data(), int(lens.size()), threads, kTpaGroup);
        ASSERT_EQ(plan.first.size(), size_t(threads) + 1);
        std::vector<std::vector<int>> covered(lens.size());
        for (size_t i = 0; i < lens.size(); i++) covered[i].assign(size_t(lens[i]), 0);
        for (const flash_detail::Task& t : plan.tasks) {
            const int len = lens[size_t(t.seq)];
            if (len == 0) continue;
            EXPECT_LT(t.j0, t.j1) << "an empty task of sequence " << t.seq;
            EXPECT_EQ(t.j0 % kTpaGroup, 0) << threads << " threads, sequence " << t.seq;
            EXPECT_TRUE(t.j1 % kTpaGroup == 0 || t.j1 == len)
                << threads << " threads, sequence " << t.seq << " task ends at " << t.j1;
            EXPECT_GE(t.ahead, t.j1);
            EXPECT_LE(t.ahead, len);
            for (int j = t.j0; j < t.j1; j++) covered[size_t(t.seq)][size_t(j)]++;
        }
        for (size_t i = 0; i < lens.size(); i++)
            for (int j = 0; j < lens[i]; j++)
                ASSERT_EQ(covered[i][size_t(j)], 1) << "sequence " << i << " position " << j;
    }
}

TEST(TpaGrouped, KvCacheGroupsFloat32TpaCachesOfWholeGroupsAndGathersRecordsInPlace) {
    const ModelConfig tpa = test::tiny_test_config(AttentionKind::tpa);
    // Contiguous (50 positions: a block of 64), paged in blocks of 16 or 32: grouped.
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::f32).tpa_group(), kTpaGroup);
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::f32).block_tokens(), 64);
    EXPECT_EQ(kv_contiguous_tokens(tpa, CacheType::f32, 50), 64);  // what serve plans with
    EXPECT_EQ(kv_contiguous_tokens(tpa, CacheType::bf16, 50), 50);
    EXPECT_EQ(kv_contiguous_tokens(test::tiny_test_config(AttentionKind::mha), CacheType::f32, 50),
              50);
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::f32, CachePaging{32, 0}).tpa_group(), kTpaGroup);
    EXPECT_EQ(KVCache(test::tiny_test_config(AttentionKind::tpa_kvonly), 1, 20, CacheType::f32)
                  .tpa_group(),
              kTpaGroup);
    // Blocks of other sizes, bf16 and q8 caches and the other kinds: in place.
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::f32, CachePaging{8, 0}).tpa_group(), 0);
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::bf16).tpa_group(), 0);
    EXPECT_EQ(KVCache(tpa, 2, 50, CacheType::q8).tpa_group(), 0);
    EXPECT_EQ(
        KVCache(test::tiny_test_config(AttentionKind::mha), 2, 50, CacheType::f32).block_tokens(),
        50);
    EXPECT_EQ(
        KVCache(test::tiny_test_config(AttentionKind::mha), 2, 50, CacheType::f32).tpa_group(), 0);

    // Stored records come back through the blocks and through gather, across blocks.
    KVCache cache(tpa, 2, 100, CacheType::f32, CachePaging{16, 12});
    const TpaCacheDims& g = cache.tpa_dims();
    ASSERT_EQ(g.group, kTpaGroup);
    const long rec = cache.record_numbers();
    const int n = 41;
    ASSERT_TRUE(cache.reserve(1, 20));  // slot 1 first, so slot 0's blocks are not in order
    ASSERT_TRUE(cache.reserve(0, n));
    const std::vector<float> plain = test::random_vector(size_t(n) * rec, 7);
    for (int t = 0; t < n; t++) cache.store(1, 0, t, plain.data() + t * rec);
    cache.set_length(0, n);
    std::vector<float> buf, back(static_cast<size_t>(rec));
    // gather_f32 (the chunked prefill's history): the records with B_K in place.
    const float* hist = cache.gather_f32(1, 0, n, buf);
    ASSERT_GE(buf.size(), size_t(48) * rec);  // three whole groups
    for (int t = 0; t < n; t++) {
        for (long i = 0; i < rec; i++)
            ASSERT_EQ(hist[t * rec + i], plain[size_t(t * rec + i)]) << "token " << t;
        read_tpa_record(back.data(), cache.f32(1, 0, t), t, g);
        for (long i = 0; i < rec; i++)
            ASSERT_EQ(back[size_t(i)], plain[size_t(t * rec + i)]) << "token " << t;
    }
}

}  // namespace
