// t6's portable random numbers: xoshiro256** (Blackman and Vigna), seeded with splitmix64. Its
// whole state is four 64-bit words: the training data sampler saves it in checkpoints so a resumed
// run draws the same windows as an uninterrupted one, and evaluation uses it to shuffle few-shot
// examples reproducibly, on any platform (std:: distributions are not portable across standard
// libraries).
#pragma once
#include <array>
#include <cstdint>

namespace t6 {

class Rng {
  public:
    explicit Rng(uint64_t seed = 0) { reseed(seed); }

    void reseed(uint64_t seed) {
        for (auto& w : s_) {
            seed += 0x9e3779b97f4a7c15ull;  // splitmix64
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            w = z ^ (z >> 31);
        }
    }

    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform in [0, n) (n > 0) by the multiply-shift method; the bias, at most n / 2^64, is
    // far below anything a training run can observe.
    uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }

    const std::array<uint64_t, 4>& state() const { return s_; }
    void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

  private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<uint64_t, 4> s_{};
};

}  // namespace t6
