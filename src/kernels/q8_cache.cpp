// The 8-bit cache's record format (q8_cache.h): quantizing one record and dequantizing records,
// the latter written once with Google Highway and compiled per SIMD target (int8 -> int16 ->
// int32 -> float32, times the row's scale).
#include "kernels/q8_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/q8_cache.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void Q8Dequantize(float* dst, const int8_t* src, int n, const Q8Layout& L) {
    const hn::ScalableTag<float> df;
    const hn::Rebind<int32_t, decltype(df)> di32;
    const hn::Rebind<int16_t, decltype(df)> di16;
    const hn::Rebind<int8_t, decltype(df)> di8;
    const size_t N = hn::Lanes(df);
    for (int t = 0; t < n; t++) {
        const int8_t* rec = src + long(t) * L.bytes;
        const int8_t* codes = rec;
        for (size_t r = 0; r < L.rows.size(); r++) {
            float scale;
            std::memcpy(&scale, rec + L.scale_off + 4 * long(r), 4);
            const auto vs = hn::Set(df, scale);
            const int len = L.rows[r];
            int i = 0;
            for (; i + int(N) <= len; i += int(N)) {
                const auto c16 = hn::PromoteTo(di16, hn::LoadU(di8, codes + i));
                const auto f = hn::ConvertTo(df, hn::PromoteTo(di32, c16));
                hn::StoreU(hn::Mul(f, vs), df, dst + i);
            }
            for (; i < len; i++) dst[i] = float(codes[i]) * scale;
            codes += len;
            dst += len;
        }
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(Q8Dequantize);

Q8Layout q8_layout(const std::vector<int>& rows) {
    Q8Layout L;
    for (int r : rows)
        if (r > 0) {
            L.rows.push_back(r);
            L.numbers += r;
        }
    L.scale_off = (L.numbers + 3) / 4 * 4;
    L.bytes = L.scale_off + 4 * long(L.rows.size());
    return L;
}

Q8Layout q8_layout(const TpaCacheDims& d) {
    // In record order (TpaCacheDims: row_AK, row_AV, row_BK, row_BV).
    std::vector<int> rows;
    for (int s = 0; s < d.Rk; s++) rows.push_back(d.H);  // A_K[s, :] (rank-major)
    for (int s = 0; s < d.Rv; s++) rows.push_back(d.H);  // A_V[s, :]
    for (int s = 0; s < d.Rk; s++) rows.push_back(d.D);  // B_K[s, :]
    for (int s = 0; s < d.Rv; s++) rows.push_back(d.D);  // B_V[s, :]
    return q8_layout(rows);
}

Q8Layout q8_layout(const KvCacheDims& d) {
    return q8_layout(std::vector<int>(size_t(2 * d.Hkv), d.D));  // K heads, then V heads
}

Q8Layout q8_layout(const MlaCacheDims& d) {
    return q8_layout(std::vector<int>{d.C, d.R});
}

void q8_quantize_record(int8_t* dst, const float* src, const Q8Layout& L) {
    int8_t* codes = dst;
    for (size_t r = 0; r < L.rows.size(); r++) {
        const int len = L.rows[r];
        float amax = 0.0f;
        for (int i = 0; i < len; i++)
            amax = std::isnan(src[i]) ? src[i] : std::max(amax, std::fabs(src[i]));  // NaN sticks
        const float scale = amax / 127.0f;
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        // A non-finite row gives a non-finite scale and codes 0 where x * inv is NaN, so NaN
        // reaches the attention as from a float cache (and no NaN is cast to an integer).
        for (int i = 0; i < len; i++) {
            const float q = std::nearbyint(src[i] * inv);
            codes[i] = q == q ? int8_t(std::clamp(q, -127.0f, 127.0f)) : int8_t(0);
        }
        std::memcpy(dst + L.scale_off + 4 * long(r), &scale, 4);
        codes += len;
        src += len;
    }
    std::fill(codes, dst + L.scale_off, int8_t(0));  // padding
}

void q8_dequantize_records(float* dst, const int8_t* src, int n, const Q8Layout& L) {
    HWY_DYNAMIC_DISPATCH(Q8Dequantize)(dst, src, n, L);
}

void q8_dequantize_records_scalar(float* dst, const int8_t* src, int n, const Q8Layout& L) {
    for (int t = 0; t < n; t++) {
        const int8_t* rec = src + long(t) * L.bytes;
        const int8_t* codes = rec;
        for (size_t r = 0; r < L.rows.size(); r++) {
            float scale;
            std::memcpy(&scale, rec + L.scale_off + 4 * long(r), 4);
            for (int i = 0; i < L.rows[r]; i++) dst[i] = float(codes[i]) * scale;
            codes += L.rows[r];
            dst += L.rows[r];
        }
    }
}

}  // namespace t6
#endif  // HWY_ONCE
