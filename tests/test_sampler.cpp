// The sampler, numerically: greedy picks the argmax; temperature reshapes the softmax as
// p_i ∝ exp(l_i / T); top-k and top-p (nucleus) cut the candidates exactly where they should
// (crafted logits whose probabilities are known in closed form); the seed decides the draws.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "infer/sampler.h"

using namespace t6;

namespace {

// Frequencies of each token over n draws.
std::vector<double> frequencies(const SamplingParams& p, const std::vector<float>& logits, int n) {
    Sampler s(p);
    std::vector<double> f(logits.size(), 0.0);
    for (int i = 0; i < n; i++) f[size_t(s.sample(logits.data(), int(logits.size())))] += 1.0;
    for (double& x : f) x /= n;
    return f;
}

// Each observed frequency is within 5 standard deviations of its expected probability (a test
// that a correct sampler fails about once in 3.5 million runs per token).
void expect_distribution(const std::vector<double>& f, const std::vector<double>& p, int n) {
    ASSERT_EQ(f.size(), p.size());
    for (size_t i = 0; i < p.size(); i++) {
        const double sd = std::sqrt(p[i] * (1 - p[i]) / n);
        EXPECT_NEAR(f[i], p[i], 5 * sd + 1e-12) << "token " << i;
    }
}

SamplingParams params(float temperature, int top_k, float top_p, uint64_t seed) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = seed;
    return p;
}

}  // namespace

TEST(Sampler, GreedyTakesTheArgmaxAndTheFirstOfTies) {
    Sampler s(params(0.0f, 0, 1.0f, 1));
    const std::vector<float> a = {0.1f, 3.0f, -2.0f, 2.9f};
    EXPECT_EQ(s.sample(a.data(), 4), 1);
    const std::vector<float> tie = {1.0f, 5.0f, 5.0f};
    EXPECT_EQ(s.sample(tie.data(), 3), 1);
}

TEST(Sampler, TemperatureGivesTheSoftmaxOfTheScaledLogits) {
    // Logits 0, ln 2, ln 4: probabilities 1/7, 2/7, 4/7 at T = 1, and (1, 2^(1/2), 2) / sum at
    // T = 2 (the logits halved).
    const std::vector<float> l = {0.0f, std::log(2.0f), std::log(4.0f)};
    const int n = 60000;
    expect_distribution(frequencies(params(1.0f, 0, 1.0f, 7), l, n), {1 / 7.0, 2 / 7.0, 4 / 7.0},
                        n);
    const double z = 1 + std::sqrt(2.0) + 2;
    expect_distribution(frequencies(params(2.0f, 0, 1.0f, 8), l, n),
                        {1 / z, std::sqrt(2.0) / z, 2 / z}, n);
    // A low temperature sharpens towards the argmax: at T = 0.1 token 2 has 1 - ~2^-10.
    const auto cold = frequencies(params(0.1f, 0, 1.0f, 9), l, 5000);
    EXPECT_GT(cold[2], 0.99);
}

TEST(Sampler, TopKKeepsExactlyTheKLargestRenormalised) {
    // Probabilities (at T = 1) proportional to 8, 4, 2, 1, 1: top-2 keeps tokens 0 and 1 in the
    // ratio 2:1, and never draws the others.
    const std::vector<float> l = {std::log(8.0f), std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
    const int n = 30000;
    expect_distribution(frequencies(params(1.0f, 2, 1.0f, 3), l, n), {2 / 3.0, 1 / 3.0, 0, 0, 0},
                        n);
    // top_k = 1 is greedy; top_k >= V keeps everything.
    expect_distribution(frequencies(params(1.0f, 1, 1.0f, 4), l, 1000), {1, 0, 0, 0, 0}, 1000);
    const auto all = frequencies(params(1.0f, 99, 1.0f, 5), l, n);
    expect_distribution(all, {8 / 16.0, 4 / 16.0, 2 / 16.0, 1 / 16.0, 1 / 16.0}, n);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingTheMass) {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (sorted): the prefixes have mass 0.5, 0.8, 0.95, 1.
    const std::vector<float> l = {std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
    const int n = 30000;
    // top_p 0.45: token 1 alone. 0.79: tokens 1 and 3 (0.5 : 0.3). 0.81: and token 0 as well.
    expect_distribution(frequencies(params(1.0f, 0, 0.45f, 11), l, 1000), {0, 1, 0, 0}, 1000);
    expect_distribution(frequencies(params(1.0f, 0, 0.79f, 12), l, n), {0, 0.625, 0, 0.375}, n);
    expect_distribution(frequencies(params(1.0f, 0, 0.81f, 13), l, n),
                        {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95}, n);
    // top-k applies first, then top-p within the k kept (renormalised): k = 2 keeps 0.5 and 0.3,
    // i.e. 0.625 and 0.375, and top_p 0.6 then keeps token 1 alone.
    expect_distribution(frequencies(params(1.0f, 2, 0.6f, 14), l, 1000), {0, 1, 0, 0}, 1000);
}

TEST(Sampler, TheSeedDecidesTheDraws) {
    const std::vector<float> l(1000, 0.0f);  // uniform over 1000 tokens
    auto draws = [&](uint64_t seed) {
        Sampler s(params(1.0f, 0, 1.0f, seed));
        std::vector<int32_t> out;
        for (int i = 0; i < 64; i++) out.push_back(s.sample(l.data(), int(l.size())));
        return out;
    };
    EXPECT_EQ(draws(42), draws(42));
    EXPECT_NE(draws(42), draws(43));
    EXPECT_NE(draws(1), draws(2));
}

TEST(Sampler, OutOfRangeParametersFailWithTheirName) {
    auto message = [](const SamplingParams& p) {
        try {
            Sampler s(p);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(message(params(-1.0f, 0, 1.0f, 0)).find("temperature"), std::string::npos);
    EXPECT_NE(message(params(NAN, 0, 1.0f, 0)).find("temperature"), std::string::npos);
    EXPECT_NE(message(params(1.0f, -3, 1.0f, 0)).find("top_k"), std::string::npos);
    EXPECT_NE(message(params(1.0f, 0, 0.0f, 0)).find("top_p"), std::string::npos);
    EXPECT_NE(message(params(1.0f, 0, 1.5f, 0)).find("top_p"), std::string::npos);
}
