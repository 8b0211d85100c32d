// The scheduler over a paged KV cache (docs/paged-cache.md): when the pool runs out mid-generation
// the youngest sequences are preempted and resumed by recompute, and every request still completes
// with the text it gets alone; prompts sharing a prefix reuse its cached blocks with unchanged
// texts; every block returns to the pool.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/threads.h"
#include "model/model.h"
#include "serve/scheduler.h"
#include "test_models.h"
#include "text/byte_tokenizer.h"

using namespace t6;
using namespace t6::serve;

namespace {

// A 2-layer model with vocabulary 256 (the byte tokenizer's) and random weights everywhere.
std::unique_ptr<Model> random_model(AttentionKind kind, unsigned seed) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = 256;
    c.n_layer = 2;
    c.n_embd = 32;
    c.n_head = 4;
    c.head_dim = 8;
    c.block_size = 256;
    auto m = std::make_unique<Model>(c);
    test::randomize_weights(*m, seed);
    return m;
}

std::shared_ptr<CompletionJob> job(const std::string& prompt, int max_tokens, float temperature,
                                   uint64_t seed) {
    auto j = std::make_shared<CompletionJob>();
    j->prompt.assign(prompt.begin(), prompt.end());
    j->max_tokens = max_tokens;
    j->ignore_eos = true;
    j->sampling.temperature = temperature;
    j->sampling.top_k = temperature > 0 ? 50 : 0;
    j->sampling.seed = seed;
    return j;
}

std::string wait(CompletionJob& j) {
    std::unique_lock<std::mutex> lock(j.mu);
    EXPECT_TRUE(j.cv.wait_for(lock, std::chrono::seconds(30), [&] { return j.done; }));
    return j.text;
}

struct Fixture {
    Fixture() { set_num_threads(1); }
    std::unique_ptr<Model> model = random_model(AttentionKind::tpa, 9);
    std::unique_ptr<Tokenizer> tok = make_byte_tokenizer();
    // Row by row, so texts compare bit for bit with the alone runs (see test_serve_scheduler).
    std::unique_ptr<Scheduler> make(Metrics& m, int slots, int block_tokens, long blocks,
                                    bool prefix) {
        SchedulerOptions o;
        o.max_slots = slots;
        o.max_context = 128;
        o.row_by_row = true;
        o.block_tokens = block_tokens;
        o.kv_blocks = blocks;
        o.prefix_cache = prefix;
        return std::make_unique<Scheduler>(*model, *tok, o, m);
    }
    std::vector<std::string> alone(const std::vector<std::shared_ptr<CompletionJob>>& jobs) {
        Metrics m;
        auto s = make(m, 1, 0, 0, false);  // the contiguous cache, one sequence at a time
        std::vector<std::string> out;
        for (const auto& j : jobs) {
            auto k = job(std::string(j->prompt.begin(), j->prompt.end()), j->max_tokens,
                         j->sampling.temperature, j->sampling.seed);
            EXPECT_EQ(s->submit(k), Scheduler::Submit::ok);
            out.push_back(wait(*k));
        }
        return out;
    }
};

TEST(PagedScheduler, PoolExhaustionPreemptsAndEveryRequestCompletes) {
    Fixture f;
    Metrics m;
    // 16 blocks of 8 tokens: one sequence of the full context, while 6 sequences of up to
    // 20 + 40 tokens need 48 blocks together.
    auto s = f.make(m, 6, 8, 16, false);
    std::vector<std::shared_ptr<CompletionJob>> jobs;
    for (int i = 0; i < 6; i++)
        jobs.push_back(job("request " + std::string(size_t(10 + i), char('a' + i)), 40,
                           i == 3 ? 0.8f : 0.0f, uint64_t(i)));
    for (auto& j : jobs) ASSERT_EQ(s->submit(j), Scheduler::Submit::ok);
    std::vector<std::string> texts;
    for (auto& j : jobs) texts.push_back(wait(*j));
    EXPECT_GT(m.preemptions.load(), 0u);
    const auto ref = f.alone(jobs);
    for (size_t i = 0; i < jobs.size(); i++) {
        EXPECT_EQ(texts[i], ref[i]) << "job " << i;
        EXPECT_EQ(jobs[i]->finish_reason, "length");
        EXPECT_EQ(jobs[i]->completion_tokens, 40);
    }
    // Every block back in the pool.
    EXPECT_EQ(m.kv_blocks_in_use.load(), 0u);
    EXPECT_EQ(m.kv_blocks_free.load(), 16u);
    EXPECT_EQ(m.active_sequences.load(), 0);
}

TEST(PagedScheduler, SharedPrefixBlocksAreReusedWithUnchangedTexts) {
    Fixture f;
    Metrics m;
    auto s = f.make(m, 4, 8, 64, true);
    const std::string prefix(45, 'p');  // 5 full blocks and 5 bytes
    std::vector<std::shared_ptr<CompletionJob>> jobs;
    for (int i = 0; i < 4; i++)
        jobs.push_back(job(prefix + "question " + char('0' + i), 12, 0.0f, uint64_t(i)));
    // The first one fills the cache, then the other three share its prefix blocks.
    ASSERT_EQ(s->submit(jobs[0]), Scheduler::Submit::ok);
    std::vector<std::string> texts{wait(*jobs[0])};
    for (int i = 1; i < 4; i++) ASSERT_EQ(s->submit(jobs[size_t(i)]), Scheduler::Submit::ok);
    for (int i = 1; i < 4; i++) texts.push_back(wait(*jobs[size_t(i)]));
    EXPECT_EQ(m.prefix_hit_blocks.load(), 3u * 6);  // "p"x45 + "quest..." : 6 full blocks each
    EXPECT_EQ(m.prefix_hit_tokens.load(), 3u * 48);
    const auto ref = f.alone(jobs);
    for (size_t i = 0; i < jobs.size(); i++) EXPECT_EQ(texts[i], ref[i]) << "job " << i;
    EXPECT_EQ(m.kv_blocks_in_use.load(), 0u);
    EXPECT_GT(m.kv_blocks_cached.load(), 0u);
}

}  // namespace
