// A FlashTPA record written into / read out of a float32 cache, with B_K in place or grouped
// (TpaCacheDims, flash_decode.h).
#include <cstring>

#include "kernels/flash_decode.h"

namespace t6 {

namespace {

// kWrite: plain -> the cache record of token t at rec; else the cache record -> plain.
template <bool kWrite>
void copy_tpa_record(float* plain, float* rec, int t, const TpaCacheDims& dims) {
    const auto copy = [&](long off, long count) {
        if (kWrite)
            std::memcpy(rec + off, plain + off, sizeof(float) * size_t(count));
        else
            std::memcpy(plain + off, rec + off, sizeof(float) * size_t(count));
    };
    if (dims.group == 0) {
        copy(0, dims.rec());
        return;
    }
    copy(0, dims.off_BK());                       // A_K, A_V
    copy(dims.off_BV(), long(dims.Rv) * dims.D);  // B_V
    // B_K[t][s][d] at bk_at(t, s, d) from the group's first record.
    float* g0 = rec - long(t % kTpaGroup) * dims.rec();
    float* bk = plain + dims.off_BK();
    for (int s = 0; s < dims.Rk; s++)
        for (int d = 0; d < dims.D; d++) {
            float& c = g0[dims.bk_at(t % kTpaGroup, s, d)];
            if (kWrite)
                c = bk[s * dims.D + d];
            else
                bk[s * dims.D + d] = c;
        }
}

}  // namespace

void write_tpa_record(float* dst, int t, const float* plain, const TpaCacheDims& dims) {
    copy_tpa_record<true>(const_cast<float*>(plain), dst, t, dims);  // plain is only read
}

void read_tpa_record(float* plain, const float* src, int t, const TpaCacheDims& dims) {
    copy_tpa_record<false>(plain, const_cast<float*>(src), t, dims);  // src is only read
}

void ungroup_tpa_records(float* plain, const float* group, const TpaCacheDims& dims) {
    const long rec = dims.rec();
    std::memcpy(plain, group, sizeof(float) * size_t(kTpaGroup * rec));
    // Vector L of the group holds number L of the 16 tokens' B_K rows (flash_decode.h).
    float* bk = plain + dims.off_BK();
    for (long L = 0; L < long(dims.Rk) * dims.D; L++) {
        const float* v = group + dims.bk_vector(L);
        for (int lane = 0; lane < kTpaGroup; lane++) bk[lane * rec + L] = v[lane];
    }
}

}  // namespace t6
