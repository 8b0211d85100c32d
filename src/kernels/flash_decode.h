// Decoding attention straight from a KV cache: one new query per sequence attends to the
// sequence's cached tokens 0..len-1 (its own token included), with an online (log-sum-exp)
// softmax over blocks of the cache, split across threads along the cache and combined at the end
// (flash-decoding). Two cache kinds:
//  * FlashTPA (paper Algorithm 2, Appendix B): the cache holds TPA factors per token,
//    record = [A_K (R_K*H) | A_V (R_V*H) | B_K (R_K*D), RoPE pre-rotated | B_V (R_V*D)], the
//    head factors stored rank-major (A_K[s*H + h] = A_K[h, s]) so that a kernel with heads in
//    vector lanes reads them without a transposition (float32 caches of the TPA kinds hold each
//    16 tokens' B_K transposed, tokens in a row: TpaCacheDims::group below); the
//    query is given as its factors A_Q (H*R_Q) and rotated B_Q (R_Q*D). Scores never form Q or K:
//      P[r,s]  = B_Q[r] . B_K[j,s]                      (head-shared, R_Q*R_K*D)
//      s_h(j)  = scale/(R_Q R_K) * sum_s A_K[j,h,s] * sum_r A_Q[h,r] P[r,s]   (H*R_Q*R_K)
//      o_h     = 1/R_V * sum_j p_h(j) sum_s A_V[j,h,s] B_V[j,s]               (H*R_V*D)
//    With A_Q == nullptr the query is a full per-head q (H*D) (T6_kvonly): s_h(j) =
//    scale/R_K * sum_s A_K[j,h,s] (q_h . B_K[j,s]).
//  * Standard K/V (MHA/MQA/GQA): record = [K (Hkv*D) | V (Hkv*D)], query head h reads KV head
//    h / (H/Hkv).
//  * Absorbed MLA (DeepSeek-V2 Sec. 2.1.2 / paper Appendix A.4): record = [c_KV (d_c),
//    normalised | k_pe (d_h^R), rotated], one per token for all heads. The query of head h is
//    given absorbed, [q_lat_h = W_UK[h]^T q_nope_h (d_c) | q_pe_h (d_h^R), rotated], so the score
//    is one dot product with the whole record and the values stay in the latent:
//      s_h(j)  = scale * [q_lat_h | q_pe_h] . [c_j | k_pe_j]                   (H*(d_c+d_h^R))
//      o_h     = sum_j p_h(j) c_j      (d_c; the caller applies W_UV[h] once)  (H*d_c)
//    Each record is read once for all H heads; the kernel is compute-bound (2H(2 d_c + d_h^R)
//    FLOPs per (d_c + d_h^R) cached numbers), so blocks of records are processed as register-tiled
//    small matrix products (heads in vector lanes).
// The kernels are written once with Google Highway and compiled for AVX-512 (HWY_AVX3), AVX2 and
// scalar; the target in force (core/simd.h: the CPU's best, capped by T6_SIMD) runs, chosen at
// run time, so one portable binary uses the CPU it runs on. Shapes the vector kernels do not take
// (FlashTPA D > 128; K/V D not in {16, 32, 64, 128}) run portable plain-loop versions.
// Cache elements are float, bf16 (uint16_t, the upper half of a float32) or q8 (int8_t: records of
// int8 codes with one float32 scale per row at the end, kernels/q8_cache.h; record j starts
// q8_layout(dims).bytes * j bytes in, and the kernels compute over the dequantized numbers).
// Arithmetic is float32,
// except FlashTPA over a bf16 cache on CPUs with AVX-512 BF16: it multiplies the cached factors
// with vdpbf16ps (exact products, float32 sums), which needs the query factor and the value
// weights p*A_V/R_V rounded to bf16 as well (relative 2^-9 each); scores, softmax and the output
// accumulators stay float32.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/bf16.h"

namespace t6 {

// A FlashTPA record: [A_K (R_K*H) | A_V (R_V*H) | B_K (R_K*D) | B_V (R_V*D)]. The head factors
// come first so that the B_K rows, which the kernels load in whole vectors, start on a 64-byte
// line in every other record at small-t6's shape (1,568-byte records, B_K at byte 544), where the
// order [A_K | B_K | A_V | B_V] put every B_K row across two lines (B_K at byte 272). FlashTPA
// over 12 x 4K-64K records, Zen 5, medians of 3 rounds: 0.90-0.92 of the time on AVX-512, AVX2
// and the q8/bf16 caches 0.97-1.01 (docs/decode-bench.md, session 43). The A rows are read with
// masked loads whose lanes past H stay inside the record (A_V is followed by B_K).
//
// B_K grouped (group == kTpaGroup; float32 caches whose blocks hold whole groups, set by the
// cache, model/kv_cache.h): the B_K numbers of each aligned group of 16 tokens are stored
// transposed, tokens in a row, so that the feature products B_Q[i] . B_K[t][j] of 16 tokens are
// plain multiply-adds of 16-token vectors (no transposition, no reduction of partial sums). The
// group's R_K*D vectors of 16 tokens, vector L = j*D + d holding B_K[g0 .. g0+16)[j][d], fill the
// B_K slots of the group's 16 records in order, R_K*D/16 vectors per slot: vector L lies in the
// slot of record g0 + L / (R_K*D/16), at (L mod (R_K*D/16)) * 16. Record sizes, the A and B_V
// parts and every byte count stay as they are; only where B_K's numbers sit within the group
// changes. Needs R_K*D a multiple of 16 (can_group). group == 0: B_K[t] in record t's slot.
constexpr int kTpaGroup = 16;
// n tokens rounded up to whole groups.
constexpr long tpa_group_tokens(long n) {
    return (n + kTpaGroup - 1) / kTpaGroup * kTpaGroup;
}
struct TpaCacheDims {
    int H = 0, Rk = 0, Rv = 0, D = 0;
    int group = 0;  // 0: B_K rows in place; kTpaGroup: grouped (above)
    long rec() const { return long(Rk + Rv) * (H + D); }
    long off_AK() const { return 0; }
    long off_AV() const { return long(H) * Rk; }
    long off_BK() const { return off_AV() + long(H) * Rv; }
    long off_BV() const { return off_BK() + long(Rk) * D; }
    // Positions of A_K[h, s] and A_V[h, s] in a record.
    long ak(int h, int s) const { return off_AK() + long(s) * H + h; }
    long av(int h, int s) const { return off_AV() + long(s) * H + h; }
    // Row indices (q8 row scales, kernels/q8_cache.h: rows in record order) of A_K[s, :],
    // A_V[s, :], B_K[s, :] and B_V[s, :].
    int row_AK(int s) const { return s; }
    int row_AV(int s) const { return Rk + s; }
    int row_BK(int s) const { return Rk + Rv + s; }
    int row_BV(int s) const { return 2 * Rk + Rv + s; }
    // Grouped B_K: whether the shape allows it; vectors of 16 tokens per record slot; where
    // vector L (= j*D + d) of a group starts, from the group's first record.
    bool can_group() const { return Rk > 0 && D > 0 && (long(Rk) * D) % kTpaGroup == 0; }
    long bk_vectors_per_slot() const { return long(Rk) * D / kTpaGroup; }
    long bk_vector(long L) const {
        const long vps = bk_vectors_per_slot();
        return (L / vps) * rec() + off_BK() + (L % vps) * kTpaGroup;
    }
    // Position of B_K[t][s][d] from the record of token t0, a multiple of kTpaGroup tokens before
    // or at t (any t0 <= t when not grouped).
    long bk_at(int t, int s, int d) const {
        if (group == 0) return long(t) * rec() + off_BK() + long(s) * D + d;
        return long(t / kTpaGroup) * kTpaGroup * rec() + bk_vector(long(s) * D + d) + t % kTpaGroup;
    }
};

// Writes record `plain` (rec() numbers, B_K rows in place) of token t into a float32 cache whose
// record of token t is at dst; grouped, B_K's numbers go to the slots of t's group (which must
// be allocated: records t - t % 16 .. + 16). read_tpa_record is the inverse.
void write_tpa_record(float* dst, int t, const float* plain, const TpaCacheDims& dims);
void read_tpa_record(float* plain, const float* src, int t, const TpaCacheDims& dims);
// The 16 records of a group (group: its first record, B_K grouped) with B_K in place, into plain.
void ungroup_tpa_records(float* plain, const float* group, const TpaCacheDims& dims);

struct KvCacheDims {
    int Hq = 0, Hkv = 0, D = 0;
    long rec() const { return 2L * Hkv * D; }
};

struct MlaCacheDims {
    int H = 0, C = 0, R = 0;  // heads, d_c (kv_lora_rank), d_h^R (qk_rope_head_dim)
    long rec() const { return long(C) + R; }
};

// One sequence's cache as the decoding kernels read it (paged cache, docs/paged-cache.md): blocks
// of `tokens` records each, the sequence's k-th block at base + table[k] * stride elements.
// A contiguous cache is the special case of one block (table {0}, tokens >= the length), so
// there is one code path; the kernels never let a block of their online softmax cross a cache
// block, so records are read in place exactly as from a contiguous cache.
template <typename T>
struct CacheBlocks {
    const T* base = nullptr;
    const int* table = nullptr;  // the sequence's block table
    long stride = 0;             // elements from one pool block to the next
    int tokens = 0;              // records per block
    // Record j and the records from j to the end of its block.
    const T* at(int j, long rec) const {
        return base + long(table[j / tokens]) * stride + long(j % tokens) * rec;
    }
    int left(int j) const { return tokens - j % tokens; }
    // The kernels' block starting at record j of a range ending at j1: at most `most` records,
    // never across a cache block.
    int block(int j, int j1, int most) const { return std::min({most, j1 - j, left(j)}); }
    // A contiguous cache: records dims.rec() apart from `p` on.
    static CacheBlocks contiguous(const T* p);
};

template <typename T>
CacheBlocks<T> CacheBlocks<T>::contiguous(const T* p) {
    static const int kZero = 0;
    return CacheBlocks{p, &kZero, 0, 1 << 30};
}

// One sequence's decode query.
struct TpaQuery {
    const float* A = nullptr;  // (H, Rq) or nullptr for a full q
    const float* B = nullptr;  // (Rq, D) rotated, or (H, D) rotated when A is nullptr
    int Rq = 0;
};

// out[i] (H*D) for sequence i < nseq: attention of query qs[i] over cache[i][0 .. lens[i]).
// cache[i] points at the sequence's first record; records are dims.rec() elements apart.
template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const T* const* cache, const int* lens,
                      int nseq, const TpaCacheDims& dims, float scale);
// The same over paged caches (CacheBlocks); the overloads above are this with contiguous ones.
template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const CacheBlocks<T>* cache,
                      const int* lens, int nseq, const TpaCacheDims& dims, float scale);

// Which FlashTPA kernel this build runs over a cache of the given element type (for benchmark
// output): the path that runs at the SIMD target now in force, e.g. "avx512bf16: vdpbf16ps on the
// bf16 factors", "Highway AVX2".
std::string flash_tpa_kernel_name(bool bf16_cache);
// The same for the absorbed MLA kernel over a latent of `latent` numbers (d_c): "avx512bf16:
// vdpbf16ps on the bf16 latent" where that path runs (d_c a multiple of 32), else the Highway
// target.
std::string flash_mla_kernel_name(bool bf16_cache, int latent);

// Where the decoding kernels' software prefetches of the next block of records go over a float32
// cache, in FlashTPA and in the flash K/V kernel without the tokens-in-lanes scores (MHA, and
// groups of 2-3 query heads per KV head): when true, FlashTPA's and those groups' into L1
// (prefetcht0) and MHA's none (the hardware prefetchers alone streamed small-mha's cache 3-17%
// faster on Zen 5 than with the next block prefetched into L1: flash_kv_decode.cpp, session 52);
// when false, all into L2 (prefetcht1). bf16 and q8 caches in the flash K/V kernel without the
// tokens-in-lanes scores follow the setting too (into L1 when true; session 56). FlashTPA's bf16
// and q8 caches, groups of 4 or more heads per KV head (GQA, MQA) and MLA always prefetch into L2.
// Default: true on AMD CPUs, false elsewhere. On the Zen 5 machine (session 37), decoding steps
// alternating between the two (`t6 bench decode`, float32 weights and cache, 10 pairs per point, 3
// runs per target), attention L1 / L2: small-t6 at 16K and 64K 0.86-1.01 (median 0.92), small-mha
// 0.85-1.01 (median 0.97); before the setting was narrowed to these, small-gqa, small-mqa and
// small-mla measured 0.99-1.04 and the bf16 and q8 caches 0.95-1.08. The distances and shares were
// tuned with L2 on an Intel Xeon (sessions 28-35), where L1 was not measured, so other CPUs keep L2
// (docs/decode-bench.md, session 37). The setting changes no number. flash_prefetch_l1 reads it;
// set_flash_prefetch_l1 sets it (not while kernels run) and returns the previous one.
bool flash_prefetch_l1();
bool set_flash_prefetch_l1(bool l1);

// out[i] (Hq*D) for sequence i: standard attention of q[i] (Hq*D, rotated) over the cache.
template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const T* const* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale);
template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale);

// out[i] (H*C, latent outputs) for sequence i: absorbed MLA attention of q[i] (H, C+R) =
// [q_lat | q_pe] per head over the latent cache.
template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const T* const* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale);
template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale);

}  // namespace t6
