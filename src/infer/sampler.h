// Choosing the next token from logits: greedy (temperature 0), or sampling with temperature,
// top-k and top-p (nucleus) filtering, from a seeded generator so runs are reproducible.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace t6 {

struct SamplingParams {
    float temperature = 1.0f;  // 0: greedy
    int top_k = 0;             // 0: off
    float top_p = 1.0f;        // 1: off
    uint64_t seed = 0;
    // Fails with a one-line error naming the parameter when a value is out of range.
    void validate() const;
};

class Sampler {
  public:
    explicit Sampler(const SamplingParams& p);
    int32_t sample(const float* logits, int V);

  private:
    SamplingParams p_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace t6
