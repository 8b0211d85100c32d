// A FlashTPA record written into / read out of a float32 cache, with B_K in place or grouped
// (TpaCacheDims, flash_decode.h).
#include <cstring>

#include "kernels/flash_decode.h"

namespace t6 {

void write_tpa_record(float* dst, int t, const float* plain, const TpaCacheDims& dims) {
    if (dims.group == 0) {
        std::memcpy(dst, plain, sizeof(float) * size_t(dims.rec()));
        return;
    }
    std::memcpy(dst, plain, sizeof(float) * size_t(dims.off_BK()));
    std::memcpy(dst + dims.off_BV(), plain + dims.off_BV(),
                sizeof(float) * size_t(dims.Rv) * dims.D);
    // B_K[t][s][d] at bk_at(t, s, d) from the group's first record.
    float* g0 = dst - long(t % kTpaGroup) * dims.rec();
    const float* bk = plain + dims.off_BK();
    for (int s = 0; s < dims.Rk; s++)
        for (int d = 0; d < dims.D; d++) g0[dims.bk_at(t % kTpaGroup, s, d)] = bk[s * dims.D + d];
}

void read_tpa_record(float* plain, const float* src, int t, const TpaCacheDims& dims) {
    if (dims.group == 0) {
        std::memcpy(plain, src, sizeof(float) * size_t(dims.rec()));
        return;
    }
    std::memcpy(plain, src, sizeof(float) * size_t(dims.off_BK()));
    std::memcpy(plain + dims.off_BV(), src + dims.off_BV(),
                sizeof(float) * size_t(dims.Rv) * dims.D);
    const float* g0 = src - long(t % kTpaGroup) * dims.rec();
    float* bk = plain + dims.off_BK();
    for (int s = 0; s < dims.Rk; s++)
        for (int d = 0; d < dims.D; d++) bk[s * dims.D + d] = g0[dims.bk_at(t % kTpaGroup, s, d)];
}

}  // namespace t6
