// The single-process parts of data-parallel training (train/dist.h): the model reports each
// gradient bucket as soon as it is final, the buckets cover every parameter once, a ZeRO-1
// sharded AdamW step equals the whole step, and the even split of the parameters. The runs of
// several ranks under mpirun are in test_cli_dist.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "kernels/embedding.h"
#include "model/model.h"
#include "test_train_util.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/dist.h"

using namespace t6;

namespace {

std::vector<int32_t> random_tokens(size_t n, int vocab, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(0, vocab - 1);
    std::vector<int32_t> v(n);
    for (auto& t : v) t = d(rng);
    return v;
}

// For each attention kind: every bucket the hook reports holds, at that moment, exactly the
// final gradient of the whole forward_backward call; the buckets are disjoint, cover every
// parameter, arrive in grad_buckets() order, the layers' buckets before the rest; and setting
// the hook leaves the gradients bit for bit as without it. Then the same with the embedding
// backward deferred (data-parallel overlap).
void check_buckets(const ModelConfig& cfg) {
    Model m(cfg);
    m.init_weights(7);
    // c_proj weights start at zero; make them nonzero so that every gradient path is exercised.
    for (size_t i = 0; i < m.num_params(); i++)
        if (m.params()[i] == 0.0f) m.params()[i] = 0.01f * float((i * 7919) % 13) - 0.06f;
    const int B = 2, T = 16;
    const auto x = random_tokens(size_t(B) * T, cfg.vocab_size, 1);
    const auto y = random_tokens(size_t(B) * T, cfg.vocab_size, 2);

    m.zero_grad();
    m.forward_backward(x.data(), y.data(), B, T, 0.5f);
    const std::vector<float> plain(m.grads(), m.grads() + m.num_params());

    std::vector<std::pair<size_t, size_t>> seen;
    std::map<size_t, std::vector<float>> snapshot;
    auto hook = [&](size_t offset, size_t count) {
        seen.push_back({offset, count});
        snapshot[offset].assign(m.grads() + offset, m.grads() + offset + count);
    };
    m.set_grad_ready_hook(hook);
    m.zero_grad();
    m.forward_backward(x.data(), y.data(), B, T, 0.5f);
    m.set_grad_ready_hook(nullptr);

    ASSERT_EQ(seen, m.grad_buckets());
    EXPECT_EQ(seen.size(), size_t(cfg.n_layer) + 1) << "one bucket per layer + the embedding";
    std::vector<int> covered(m.num_params(), 0);
    for (const auto& [offset, count] : seen) {
        ASSERT_LE(offset + count, m.num_params());
        for (size_t i = offset; i < offset + count; i++) covered[i]++;
        const std::vector<float>& snap = snapshot[offset];
        EXPECT_TRUE(std::equal(snap.begin(), snap.end(), m.grads() + offset))
            << "bucket at " << offset << " changed after it was reported final";
    }
    EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int c) { return c == 1; }));
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), m.grads()));
    // The last layer comes first; the embedding (offset 0) last.
    EXPECT_GT(seen.front().first, seen[1].first);
    EXPECT_EQ(seen.back().first, 0u);
    // A nonzero gradient in every bucket (the check above is not vacuous).
    for (const auto& [offset, count] : seen)
        EXPECT_TRUE(std::any_of(m.grads() + offset, m.grads() + offset + count,
                                [](float g) { return g != 0.0f; }));

    // Deferred embedding backward: the embedding's bucket comes first (the lm_head's part of its
    // gradient); adding embedding_backward of embedding_output_grad() afterwards gives the plain
    // gradient bit for bit.
    seen.clear();
    snapshot.clear();
    m.set_defer_embedding_backward(true);
    m.set_grad_ready_hook(hook);
    m.zero_grad();
    m.forward_backward(x.data(), y.data(), B, T, 0.5f);
    m.set_grad_ready_hook(nullptr);
    ASSERT_EQ(seen, m.grad_buckets());
    ASSERT_EQ(seen.front().first, 0u);
    for (const auto& [offset, count] : seen)
        EXPECT_TRUE(
            std::equal(snapshot[offset].begin(), snapshot[offset].end(), m.grads() + offset))
            << "bucket at " << offset << " changed after it was reported final (deferred)";
    const size_t wte = seen.front().second;
    EXPECT_FALSE(std::equal(plain.begin(), plain.begin() + long(wte), m.grads()))
        << "the embedding lookup's gradient was not left out";
    embedding_backward(m.grads(), m.embedding_output_grad(), x.data(), B * T, cfg.n_embd,
                       cfg.vocab_size);
    m.set_defer_embedding_backward(false);
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), m.grads()));
}

TEST(DataParallel, GradientBucketsAreFinalWhenReportedT6) {
    check_buckets(test::tiny_train_model());
}

TEST(DataParallel, GradientBucketsAreFinalWhenReportedGqaAndMla) {
    nlohmann::json gqa = {{"attention", "gqa"}, {"vocab_size", 64}, {"n_layer", 3},
                          {"n_embd", 32},       {"n_head", 4},      {"head_dim", 8},
                          {"n_kv_head", 2},     {"block_size", 32}};
    check_buckets(config_from_json(gqa, "gqa"));
    nlohmann::json mla = {{"attention", "mla"}, {"vocab_size", 64},  {"n_layer", 2},
                          {"n_embd", 32},       {"n_head", 4},       {"head_dim", 8},
                          {"q_lora_rank", 16},  {"kv_lora_rank", 8}, {"qk_rope_head_dim", 4},
                          {"v_head_dim", 8},    {"block_size", 32}};
    check_buckets(config_from_json(mla, "mla"));
}

TEST(DataParallel, SplitEvenlyCoversEverythingOnce) {
    for (size_t n : {0ul, 1ul, 7ul, 1000ul, 1000003ul})
        for (int parts : {1, 2, 3, 8}) {
            const auto off = dist::split_evenly(n, parts);
            ASSERT_EQ(off.size(), size_t(parts) + 1);
            EXPECT_EQ(off.front(), 0u);
            EXPECT_EQ(off.back(), n);
            for (int r = 0; r < parts; r++) {
                EXPECT_LE(off[size_t(r)], off[size_t(r) + 1]);
                EXPECT_LE(off[size_t(r) + 1] - off[size_t(r)], n / size_t(parts) + 1);
            }
        }
}

// ZeRO-1: each rank steps AdamW on its shard with shard-sized moments; the shards stepped one
// after another must equal one step over the whole buffer, bit for bit, over several steps.
TEST(DataParallel, ShardedAdamWEqualsTheWholeStep) {
    const size_t n = 10007;
    std::vector<float> p_full = test::random_vector(n, 1), p_shard = p_full;
    AdamW whole(n, AdamWConfig{});
    const auto off = dist::split_evenly(n, 3);
    std::vector<std::unique_ptr<AdamW>> parts;
    for (int r = 0; r < 3; r++)
        parts.push_back(
            std::make_unique<AdamW>(off[size_t(r) + 1] - off[size_t(r)], AdamWConfig{}));
    for (int step = 0; step < 4; step++) {
        const std::vector<float> g = test::random_vector(n, 10 + unsigned(step));
        whole.step(p_full.data(), g.data(), 1e-2, 0.7f);
        for (int r = 0; r < 3; r++)
            parts[size_t(r)]->step(p_shard.data() + off[size_t(r)], g.data() + off[size_t(r)], 1e-2,
                                   0.7f);
    }
    EXPECT_TRUE(std::equal(p_full.begin(), p_full.end(), p_shard.begin()));
    EXPECT_NE(p_full, test::random_vector(n, 1));  // the steps moved the parameters
}

TEST(DataParallel, SingleProcessWithoutLauncherIsRankZeroOfOne) {
    // The test programs are not started by mpirun: init() must not start MPI.
    if (dist::launched()) GTEST_SKIP() << "started by an MPI launcher";
    dist::init();
    EXPECT_EQ(dist::rank(), 0);
    EXPECT_EQ(dist::size(), 1);
    EXPECT_EQ(dist::rank_prefix(), "");
    double v = 2.5;
    dist::allreduce_sum(&v, 1, "test");  // a group of one: unchanged
    EXPECT_EQ(v, 2.5);
}

}  // namespace
