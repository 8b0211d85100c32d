#include "infer/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace t6 {

void SamplingParams::validate() const {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature))
        fail("temperature must be a number >= 0 (got ", temperature, ")");
    if (top_k < 0) fail("top_k must be >= 0 (got ", top_k, ")");
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1] (got ", top_p, ")");
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
    p_.validate();
}

int32_t Sampler::sample(const float* logits, int V) {
    if (p_.temperature == 0.0f) return int32_t(std::max_element(logits, logits + V) - logits);
    cand_.resize(V);
    for (int i = 0; i < V; i++) cand_[i] = {logits[i] / p_.temperature, i};
    // Keep the top-k (by logit), sorted descending.
    size_t k = p_.top_k > 0 ? std::min<size_t>(p_.top_k, V) : size_t(V);
    auto desc = [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), desc);
    cand_.resize(k);
    // Softmax over the candidates, then the smallest prefix with mass >= top_p.
    const float mx = cand_[0].first;
    double sum = 0;
    for (auto& c : cand_) sum += (c.first = std::exp(c.first - mx));
    size_t keep = k;
    if (p_.top_p < 1.0f) {
        double mass = 0;
        for (size_t i = 0; i < k; i++) {
            mass += cand_[i].first / sum;
            if (mass >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += cand_[i].first;
    double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
    for (size_t i = 0; i < keep; i++) {
        u -= cand_[i].first;
        if (u <= 0) return cand_[i].second;
    }
    return cand_[keep - 1].second;
}

}  // namespace t6
