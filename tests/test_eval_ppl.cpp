// Perplexity with sliding windows (src/eval/perplexity.h): the windows cover every token after
// the first exactly once, the loss equals the training code's loss (Model::forward with targets),
// and each token's NLL equals a reference forward over exactly the window's context.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "eval/loglik.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "test_eval_util.h"

using namespace t6;

namespace {

std::unique_ptr<Model> tiny_model(AttentionKind kind = AttentionKind::tpa, int block = 32) {
    return test::eval_model(kind, block);
}

std::vector<int32_t> stream(size_t n, int vocab) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; i++) t[i] = int32_t((i * 7 + i * i * 3 + 1) % vocab);
    return t;
}

eval::TokenSource source_of(const std::vector<int32_t>& t) {
    return [&t](size_t b, size_t n, int32_t* o) { std::copy(t.begin() + b, t.begin() + b + n, o); };
}

TEST(EvalPpl, WindowsScoreEveryTokenAfterTheFirstOnce) {
    for (size_t n : {2u, 3u, 17u, 40u, 41u, 100u, 101u}) {
        for (auto [ctx, stride] :
             std::vector<std::pair<int, int>>{{8, 8}, {8, 3}, {10, 7}, {5, 1}, {64, 64}}) {
            auto ws = eval::rolling_windows(n, ctx, stride);
            std::vector<int> hits(n, 0);
            for (const auto& w : ws) {
                ASSERT_LE(w.inputs(), ctx);
                ASSERT_GE(w.score_from, w.begin + 1);
                for (size_t p = w.score_from; p < w.end; p++) hits[p]++;
                // Every scored token after the first window sees >= ctx - stride tokens.
                if (w.begin > 0) {
                    EXPECT_GE(w.score_from - w.begin, size_t(ctx - stride + 1));
                }
            }
            EXPECT_EQ(hits[0], 0);
            for (size_t p = 1; p < n; p++) EXPECT_EQ(hits[p], 1) << "n=" << n << " pos " << p;
            EXPECT_EQ(ws.back().end, n);
        }
    }
    EXPECT_THROW(eval::rolling_windows(10, 4, 5), Error);
}

// One window that holds the whole stream: loss = Model::forward's training loss on the same
// tokens, perplexity = exp(loss).
TEST(EvalPpl, EqualsTrainingLossWhenTheContextFits) {
    auto mp = tiny_model();
    Model& m = *mp;
    const auto t = stream(33, 64);  // 32 inputs = block_size
    std::vector<int32_t> x(t.begin(), t.end() - 1), y(t.begin() + 1, t.end());
    const float train_loss = m.forward(x.data(), y.data(), 1, 32);
    for (int batch : {1, 3}) {
        eval::PplTotals r = eval::score_stream(m, source_of(t), t.size(), {32, 32, batch});
        EXPECT_EQ(r.tokens, 32);
        EXPECT_NEAR(r.loss(), train_loss, 1e-5 * train_loss);
        EXPECT_NEAR(std::exp(r.loss()), std::exp(double(train_loss)), 1e-4);
    }
}

// Sliding windows over a stream whose length is not a multiple of the stride: tokens_scored is
// n - 1 and every token's NLL is the one a full forward over its window's context gives.
TEST(EvalPpl, SlidingWindowsMatchPerTokenReference) {
    for (auto kind : {AttentionKind::tpa, AttentionKind::gqa, AttentionKind::mla}) {
        auto mp = tiny_model(kind);
        Model& m = *mp;
        const size_t n = 59;
        const int ctx = 16, stride = 6;  // (59 - 1 - 16) % 6 != 0
        const auto t = stream(n, 64);
        std::vector<double> per;
        eval::PplTotals r = eval::score_stream(m, source_of(t), n, {ctx, stride, 4}, &per);
        ASSERT_EQ(r.tokens, static_cast<long long>(n - 1));
        double sum = 0;
        for (const auto& w : eval::rolling_windows(n, ctx, stride)) {
            // One forward over the window; its logits at each scored position.
            const int T = w.inputs();
            std::vector<int32_t> x(t.begin() + w.begin, t.begin() + w.begin + T);
            m.forward(x.data(), nullptr, 1, T);
            for (size_t p = w.score_from; p < w.end; p++) {
                const size_t row = p - 1 - w.begin;
                const double ref = -eval::token_logprob(m.logits() + row * 64, 64, t[p]);
                EXPECT_NEAR(per[p], ref, 1e-5) << "pos " << p;
                sum += ref;
            }
        }
        EXPECT_NEAR(r.nll, sum, 1e-6 * sum + 1e-4);

        // With the whole stream in one context (a longer-context model), every token's NLL is the
        // full forward's; the windows differ only where they cut the context.
        auto bigp = tiny_model(kind, 64);
        Model& big = *bigp;
        std::vector<double> full;
        eval::PplTotals rf = eval::score_stream(big, source_of(t), n, {64, 64, 1}, &full);
        EXPECT_EQ(rf.tokens, static_cast<long long>(n - 1));
        std::vector<int32_t> x(t.begin(), t.end() - 1), y(t.begin() + 1, t.end());
        const float loss = big.forward(x.data(), y.data(), 1, int(n - 1));
        EXPECT_NEAR(rf.loss(), loss, 1e-5 * loss);
    }
}

TEST(EvalPpl, RejectsContextBeyondBlockSize) {
    auto mp = tiny_model();
    Model& m = *mp;
    const auto t = stream(100, 64);
    EXPECT_THROW(eval::score_stream(m, source_of(t), t.size(), {33, 33, 1}), Error);
}

}  // namespace
