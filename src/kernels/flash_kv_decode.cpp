// Flash-decoding over a standard K/V cache (MHA, MQA, GQA): see flash_decode.h.
#include "kernels/flash_decode_common.h"

namespace t6 {

using namespace flash_detail;

namespace {

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1). Portable version.
template <typename T>
void kv_range_generic(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm,
                      float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    const int Hq = dm.Hq, Hkv = dm.Hkv, D = dm.D, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.resize(size_t(Hq) * kBlock);
    float* S = sc.data();
    for (int b0 = j0; b0 < j1; b0 += kBlock) {
        const int n = std::min(kBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        for (int jj = 0; jj < n; jj++) {
            const float* K = recs + jj * rec;
            for (int h = 0; h < Hq; h++)
                S[h * kBlock + jj] = scale * dot(q + h * D, K + (h / group) * D, D);
        }
        for (int h = 0; h < Hq; h++)
            softmax_update(S + h * kBlock, n, part.m[h], part.l[h], part.acc + size_t(h) * D, D);
        // Token-major, so each record streams through L1 once for all heads.
        for (int jj = 0; jj < n; jj++) {
            const float* V = recs + jj * rec + long(Hkv) * D;
            for (int h = 0; h < Hq; h++)
                axpy(part.acc + size_t(h) * D, S[h * kBlock + jj], V + long(h / group) * D, D);
        }
    }
}

#ifdef __AVX512F__
// Standard K/V decoding with AVX-512 (D = 16*NC). The kernel is bound by the bytes of the cache
// (2 FLOPs per 4-byte element), so each record is streamed once, token-major, in blocks of 16:
//  1. scores: every K row is loaded into registers once and multiplied with the query heads that
//     share it (GQA groups); the 16-lane partial sums of head h are laid out [h][t] so that one
//     transpose-add (hsum16) gives the block's 16 scores of head h in vector lanes;
//  2. online softmax per head on that one vector;
//  3. values: acc[h] (NC registers) += p[h][t] V[t][kv(h)] over the block, which is still in L2.
// A bf16 cache is read in place and widened in registers (load_f32x16).
constexpr int kKvBlock = 16;

template <int NC, typename T>
void kv_range_avx512(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm,
                     float scale, Partial part, std::vector<float>& /*buf*/,
                     std::vector<float>& sc) {
    constexpr int D = 16 * NC;
    const int Hq = dm.Hq, Hkv = dm.Hkv, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.resize(size_t(Hq) * kKvBlock * 16 + 16);  // written before read: no memset
    float* Pv = sc.data();                       // (Hq, kKvBlock, 16) partial scores
    float* p = Pv + size_t(Hq) * kKvBlock * 16;  // (16) probabilities of one head
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int b0 = j0; b0 < j1; b0 += kKvBlock) {
        const int n = std::min(kKvBlock, j1 - b0);
        const T* recs = cache + long(b0) * rec;  // read in place, bf16 widened on load
        for (int t = 0; t < n; t++) {
            if (b0 + kKvBlock + t < j1) {  // the matching record of the next block, into L2
                const char* nx =
                    reinterpret_cast<const char*>(cache + (long(b0) + kKvBlock + t) * rec);
                for (long off = 0; off < rec * long(sizeof(T)); off += 64)
                    _mm_prefetch(nx + off, _MM_HINT_T1);
            }
            for (int kv = 0; kv < Hkv; kv++) {
                const T* kr = recs + t * rec + long(kv) * D;
                __m512 k[NC];
                for (int c = 0; c < NC; c++) k[c] = load_f32x16(kr + 16 * c);
                for (int g = 0; g < group; g++) {
                    const int h = kv * group + g;
                    const float* qh = q + size_t(h) * D;
                    __m512 a = _mm512_mul_ps(k[0], _mm512_loadu_ps(qh));
                    for (int c = 1; c < NC; c++)
                        a = _mm512_fmadd_ps(k[c], _mm512_loadu_ps(qh + 16 * c), a);
                    _mm512_storeu_ps(Pv + (size_t(h) * kKvBlock + t) * 16, a);
                }
            }
        }
        const __mmask16 valid = lane_mask(n);
        for (int h = 0; h < Hq; h++) {
            __m512 v[16];
            for (int t = 0; t < 16; t++)
                v[t] = t < n ? _mm512_loadu_ps(Pv + (size_t(h) * kKvBlock + t) * 16)
                             : _mm512_setzero_ps();
            const __m512 s = _mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY),
                                                  _mm512_mul_ps(vscale, detail::hsum16(v)));
            const float mb = _mm512_reduce_max_ps(s);
            const float mnew = std::max(part.m[h], mb);
            const float alpha = std::exp(part.m[h] - mnew);  // m = -inf on the first block: 0
            const __m512 e = detail::exp512(_mm512_sub_ps(s, _mm512_set1_ps(mnew)));  // -inf: 0
            part.l[h] = part.l[h] * alpha + _mm512_reduce_add_ps(e);
            part.m[h] = mnew;
            _mm512_storeu_ps(p, e);
            float* acc = part.acc + size_t(h) * D;
            const __m512 al = _mm512_set1_ps(alpha);
            __m512 a[NC];
            for (int c = 0; c < NC; c++) a[c] = _mm512_mul_ps(al, _mm512_loadu_ps(acc + 16 * c));
            const T* vr = recs + long(Hkv + h / group) * D;
            for (int t = 0; t < n; t++) {
                const __m512 pt = _mm512_set1_ps(p[t]);
                for (int c = 0; c < NC; c++)
                    a[c] = _mm512_fmadd_ps(pt, load_f32x16(vr + t * rec + 16 * c), a[c]);
            }
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(acc + 16 * c, a[c]);
        }
    }
}
#endif

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1).
template <typename T>
void kv_range(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm, float scale,
              Partial part, std::vector<float>& buf, std::vector<float>& sc) {
#ifdef __AVX512F__
    switch (dm.D) {
        case 32:
            return kv_range_avx512<2>(q, cache, j0, j1, dm, scale, part, buf, sc);
        case 64:
            return kv_range_avx512<4>(q, cache, j0, j1, dm, scale, part, buf, sc);
        case 128:
            return kv_range_avx512<8>(q, cache, j0, j1, dm, scale, part, buf, sc);
        default:
            break;
    }
#endif
    kv_range_generic(q, cache, j0, j1, dm, scale, part, buf, sc);
}

}  // namespace

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const T* const* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.Hq, dims.D,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  kv_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

template void flash_kv_decode<float>(float* const*, const float* const*, const float* const*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                        const int*, int, const KvCacheDims&, float);

}  // namespace t6
