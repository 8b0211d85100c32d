// The decoding kernels (FlashTPA, flash K/V decode for MHA/MQA/GQA, absorbed MLA) at every SIMD
// target this CPU supports (simd_available_targets(): scalar, AVX2, AVX-512, AVX-512 BF16),
// against plain double-precision references written here: softmax attention over the
// materialised q, K, V. float32 caches agree to 1e-5 (relative error over the output); bf16
// caches are compared with the reference on the rounded cache, to 1e-5 where they are widened to
// float32 and, on the native bf16 path (vdpbf16ps, which also rounds the query factor and the
// value weights to bf16), to the 4e-3 of test_infer's bf16 tests on a bf16-representable query.
// On a CPU with AVX-512 BF16 the avx512bf16 target runs both bf16-cache paths (T6_BF16_DOT on and
// off: core/simd.h), whichever the CPU takes by default.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "attention_reference.h"
#include "core/error.h"
#include "core/simd.h"
#include "kernels/bf16.h"
#include "kernels/flash_decode.h"
#include "kernels/flash_decode_common.h"
#include "kernels/vec_math.h"
#include "test_util.h"

using namespace t6;

namespace {

const int kLens[3] = {1, 77, 1100};  // single token, a partial block, several splits

std::string target_label(SimdTarget t) {
    return std::string("target ") + simd_target_name(t) + " (" + simd_highway_target_name() + ")" +
           (simd_bf16_dot_decode() ? ", bf16 cache by vdpbf16ps" : "");
}

// Every available target, and on avx512bf16 both ways of reading a bf16 cache.
std::vector<std::pair<SimdTarget, Bf16DotDecode>> decode_variants() {
    std::vector<std::pair<SimdTarget, Bf16DotDecode>> v;
    for (SimdTarget t : simd_available_targets()) {
        if (t == SimdTarget::avx512bf16) {
            v.push_back({t, Bf16DotDecode::on});
            v.push_back({t, Bf16DotDecode::off});
        } else {
            v.push_back({t, Bf16DotDecode::automatic});
        }
    }
    return v;
}

// Rounds x to bf16 in place and returns the bf16 numbers.
std::vector<uint16_t> round_bf16(std::vector<float>& x) {
    std::vector<uint16_t> r(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        r[i] = float_to_bf16(x[i]);
        x[i] = bf16_to_float(r[i]);
    }
    return r;
}

using test::softmax_apply;

// Runs decode(out, q, cache) -- over the f32 caches, or over the bf16 ones when bf16 -- at every
// available target and compares each sequence's output with its reference (relative error 1e-5;
// native_tol instead where a bf16 cache takes the native path, simd_bf16_dot_decode(), whose
// vdpbf16ps also rounds the value weights to bf16: 0 when the kernel has no such path).
template <typename Decode>
void expect_every_target_matches(const std::vector<std::vector<float>>& caches,
                                 const std::vector<std::vector<uint16_t>>& c16,
                                 const std::vector<std::vector<float>>& qs,
                                 const std::vector<std::vector<float>>& refs, bool bf16,
                                 Decode decode, double native_tol = 0) {
    for (const auto& [target, mode] : decode_variants()) {
        ScopedSimdTarget scoped(target);
        ScopedBf16DotDecode scoped_mode(mode);
        std::vector<std::vector<float>> outs(3, std::vector<float>(refs[0].size(), -1.0f));
        std::vector<const float*> cp, qp;
        std::vector<const uint16_t*> cp16;
        std::vector<float*> op;
        for (int i = 0; i < 3; i++) {
            cp.push_back(caches[i].data());
            if (bf16) cp16.push_back(c16[i].data());
            qp.push_back(qs[i].data());
            op.push_back(outs[i].data());
        }
        if (bf16)
            decode(op.data(), qp.data(), cp16.data());
        else
            decode(op.data(), qp.data(), cp.data());
        const double tol = bf16 && native_tol > 0 && simd_bf16_dot_decode() ? native_tol : 1e-5;
        for (int i = 0; i < 3; i++)
            EXPECT_LT(test::rel_error(outs[i].data(), refs[i].data(), refs[i].size()), tol)
                << target_label(target) << ", sequence " << i << " (len " << kLens[i] << ")"
                << (bf16 ? ", bf16 cache" : ", f32 cache");
    }
}

// ---- FlashTPA ----
struct TpaCase {
    int Rq, Rk, Rv, H, D;  // Rq = 0: a full per-head query (T6_kvonly)
};

std::string tpa_name(const ::testing::TestParamInfo<TpaCase>& i) {
    const TpaCase& c = i.param;
    return "q" + std::to_string(c.Rq) + "k" + std::to_string(c.Rk) + "v" + std::to_string(c.Rv) +
           "H" + std::to_string(c.H) + "D" + std::to_string(c.D);
}

// Reference: q_h = 1/Rq sum_r A_Q[h,r] B_Q[r]; k_jh = 1/Rk sum_s A_K B_K; v_jh = 1/Rv sum_s A_V
// B_V.
std::vector<float> tpa_reference(const TpaCase& c, const std::vector<float>& qa,
                                 const std::vector<float>& qb, const std::vector<float>& cache,
                                 int len, float scale) {
    const TpaCacheDims dm{c.H, c.Rk, c.Rv, c.D};
    const int H = c.H, D = c.D;
    std::vector<float> out(size_t(H) * D);
    for (int h = 0; h < H; h++) {
        std::vector<double> q(D, 0.0);
        for (int d = 0; d < D; d++) {
            if (c.Rq == 0) {
                q[d] = qb[size_t(h) * D + d];
                continue;
            }
            for (int r = 0; r < c.Rq; r++)
                q[d] += double(qa[size_t(h) * c.Rq + r]) * qb[size_t(r) * D + d] / c.Rq;
        }
        std::vector<double> s(len);
        for (int j = 0; j < len; j++) {
            const float* rec = cache.data() + size_t(j) * dm.rec();
            double acc = 0;
            for (int d = 0; d < D; d++) {
                double k = 0;
                for (int t = 0; t < c.Rk; t++)
                    k += double(rec[dm.ak(h, t)]) * rec[dm.off_BK() + t * D + d];
                acc += q[d] * k / c.Rk;
            }
            s[j] = acc * scale;
        }
        softmax_apply(
            s, D,
            [&](int j, int d) {
                const float* rec = cache.data() + size_t(j) * dm.rec();
                double v = 0;
                for (int t = 0; t < c.Rv; t++)
                    v += double(rec[dm.av(h, t)]) * rec[dm.off_BV() + t * D + d];
                return v / c.Rv;
            },
            out.data() + size_t(h) * D);
    }
    return out;
}

class SimdTpa : public ::testing::TestWithParam<TpaCase> {};

TEST_P(SimdTpa, EveryTargetEqualsReference) {
    const TpaCase c = GetParam();
    const TpaCacheDims dims{c.H, c.Rk, c.Rv, c.D};
    const float scale = 1.0f / std::sqrt(float(c.D));
    for (bool bf16 : {false, true}) {
        std::vector<std::vector<float>> caches, qa, qb;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(kLens[i]) * dims.rec(), 10 + i));
            qa.push_back(test::random_vector(size_t(c.H) * (c.Rq ? c.Rq : 1), 20 + i));
            qb.push_back(test::random_vector(size_t(c.Rq ? c.Rq : c.H) * c.D, 30 + i));
            if (bf16) {
                c16.push_back(round_bf16(caches.back()));
                round_bf16(qb.back());  // the native bf16 path rounds it; keep the reference equal
            }
        }
        std::vector<std::vector<float>> refs;
        for (int i = 0; i < 3; i++)
            refs.push_back(tpa_reference(c, qa[i], qb[i], caches[i], kLens[i], scale));
        for (const auto& [target, mode] : decode_variants()) {
            ScopedSimdTarget scoped(target);
            ScopedBf16DotDecode scoped_mode(mode);
            std::vector<std::vector<float>> outs(3, std::vector<float>(size_t(c.H) * c.D, -1.0f));
            std::vector<TpaQuery> qs;
            std::vector<const float*> cp;
            std::vector<const uint16_t*> cp16;
            std::vector<float*> op;
            for (int i = 0; i < 3; i++) {
                qs.push_back(c.Rq ? TpaQuery{qa[i].data(), qb[i].data(), c.Rq}
                                  : TpaQuery{nullptr, qb[i].data(), 0});
                cp.push_back(caches[i].data());
                if (bf16) cp16.push_back(c16[i].data());
                op.push_back(outs[i].data());
            }
            if (bf16)
                flash_tpa_decode(op.data(), qs.data(), cp16.data(), kLens, 3, dims, scale);
            else
                flash_tpa_decode(op.data(), qs.data(), cp.data(), kLens, 3, dims, scale);
            // vdpbf16ps rounds the value weights p*A_V/R_V to bf16 (D a multiple of 16 only).
            const bool native = bf16 && simd_bf16_dot_decode() && c.D % 16 == 0 && c.D <= 128;
            const double tol = native ? 4e-3 : 1e-5;
            for (int i = 0; i < 3; i++)
                EXPECT_LT(test::rel_error(outs[i].data(), refs[i].data(), refs[i].size()), tol)
                    << target_label(target) << ", sequence " << i << " (len " << kLens[i] << ")"
                    << (bf16 ? ", bf16 cache" : ", f32 cache") << ", kernel "
                    << flash_tpa_kernel_name(bf16);
        }
    }
}

// Ranks 1, 2 and 6 in each factor, head counts that fill no vector (5) and more than two AVX-512
// vectors (34), full-q TPA (Rq = 0), D of 16, 32, 64, 128, one D not a multiple of 16 (40: masked
// vectors; widened on the native bf16 path too) and one above the vector kernel (160: portable).
INSTANTIATE_TEST_SUITE_P(
    Ranks, SimdTpa,
    ::testing::Values(TpaCase{1, 1, 1, 5, 64}, TpaCase{2, 2, 2, 34, 64}, TpaCase{6, 6, 6, 5, 64},
                      TpaCase{6, 2, 1, 34, 32}, TpaCase{1, 6, 2, 3, 16}, TpaCase{2, 1, 6, 8, 128},
                      TpaCase{0, 2, 2, 5, 64}, TpaCase{0, 1, 6, 34, 32}, TpaCase{0, 6, 1, 17, 16},
                      TpaCase{2, 2, 2, 5, 40}, TpaCase{1, 2, 1, 3, 160}, TpaCase{4, 2, 2, 34, 36},
                      // the presets' ranks (steps compiled for them; on AVX-512 the head
                      // groups three at a time: 1, 3, 3 + 1 and 3 + 2 groups of 16)
                      TpaCase{6, 2, 2, 34, 64}, TpaCase{6, 2, 2, 5, 16}, TpaCase{6, 2, 2, 16, 64},
                      TpaCase{6, 2, 2, 61, 64}, TpaCase{6, 2, 2, 78, 64}),
    tpa_name);

// ---- Flash K/V (MHA, GQA, MQA) ----
struct KvCase {
    int Hq, Hkv, D;
};

class SimdKv : public ::testing::TestWithParam<KvCase> {};

TEST_P(SimdKv, EveryTargetEqualsReference) {
    const auto [Hq, Hkv, D] = GetParam();
    const KvCacheDims dims{Hq, Hkv, D};
    const float scale = 1.0f / std::sqrt(float(D));
    const int group = Hq / Hkv;
    for (bool bf16 : {false, true}) {
        std::vector<std::vector<float>> caches, qs, refs;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(kLens[i]) * dims.rec(), 70 + i));
            if (bf16) c16.push_back(round_bf16(caches.back()));
            qs.push_back(test::random_vector(size_t(Hq) * D, 80 + i));
            std::vector<float> ref(size_t(Hq) * D);
            for (int h = 0; h < Hq; h++) {
                const int kv = h / group;
                const float* c = caches[i].data();
                std::vector<double> s(kLens[i]);
                for (int j = 0; j < kLens[i]; j++) {
                    double acc = 0;
                    for (int d = 0; d < D; d++)
                        acc += double(qs[i][size_t(h) * D + d]) *
                               c[size_t(j) * dims.rec() + size_t(kv) * D + d];
                    s[j] = acc * scale;
                }
                softmax_apply(
                    s, D,
                    [&](int j, int d) {
                        return double(c[size_t(j) * dims.rec() + size_t(Hkv + kv) * D + d]);
                    },
                    ref.data() + size_t(h) * D);
            }
            refs.push_back(ref);
        }
        expect_every_target_matches(
            caches, c16, qs, refs, bf16,
            [&](float* const* o, const float* const* q, const auto* const* cache) {
                flash_kv_decode(o, q, cache, kLens, 3, dims, scale);
            });
    }
}

// MHA, GQA (Hq != Hkv), MQA; odd head counts; every head size of the vector kernel (16, 32, 64,
// 128) and one of the portable version (24). small-gqa's shape (22 on 2): a bf16 cache takes the
// tokens-in-lanes scores there, in chunks of 12 and 11 heads (AVX-512) or 6 and 5 (AVX2). Groups
// of 16 or more over a float32 cache take blocks of 32 tokens on AVX-512: small-mqa's shape (23 on
// 1, chunks of 6, 6, 6 and 5 heads), 16 on 1 at D 16 and 32 on 2 at D 128.
INSTANTIATE_TEST_SUITE_P(Heads, SimdKv,
                         ::testing::Values(KvCase{5, 5, 64}, KvCase{6, 2, 64}, KvCase{6, 1, 32},
                                           KvCase{8, 2, 128}, KvCase{4, 2, 16}, KvCase{9, 3, 16},
                                           KvCase{3, 3, 24}, KvCase{22, 2, 64}, KvCase{23, 1, 64},
                                           KvCase{16, 1, 16}, KvCase{32, 2, 128}),
                         [](const auto& i) {
                             return "Hq" + std::to_string(i.param.Hq) + "Hkv" +
                                    std::to_string(i.param.Hkv) + "D" + std::to_string(i.param.D);
                         });

// ---- Absorbed MLA ----
struct MlaCase {
    int H, C, R;
};

// The absorbed-MLA decode in double: s_h(j) = scale [q_lat_h | q_pe_h] . rec_j over len records,
// o_h = sum_j p_h(j) c_j (the first C numbers of each record).
std::vector<float> mla_reference(const std::vector<float>& q, const float* c, int len,
                                 const MlaCacheDims& dims, float scale) {
    const long rec = dims.rec();
    std::vector<float> ref(size_t(dims.H) * dims.C);
    for (int h = 0; h < dims.H; h++) {
        std::vector<double> s(len);
        for (int j = 0; j < len; j++) {
            double acc = 0;
            for (long k = 0; k < rec; k++)
                acc += double(q[size_t(h) * rec + k]) * c[size_t(j) * rec + k];
            s[j] = acc * scale;
        }
        softmax_apply(
            s, dims.C, [&](int j, int d) { return double(c[size_t(j) * rec + d]); },
            ref.data() + size_t(h) * dims.C);
    }
    return ref;
}

// The tolerance of the native bf16 path (vdpbf16ps, latents a multiple of 32; 0: none), which
// rounds the probabilities to bf16 (the query too: the tests round it for their references).
double kMlaNativeTol(const MlaCacheDims& dims) {
    return dims.C % 32 == 0 ? 2e-3 : 0;  // measured 2.8e-4 .. 7.7e-4 on these cases
}

class SimdMla : public ::testing::TestWithParam<MlaCase> {};

// The kernel's own contract on an absorbed query: s_h(j) = scale [q_lat_h | q_pe_h] . rec_j,
// o_h = sum_j p_h(j) c_j (test_infer checks the absorption itself against decompress-then-attend).
TEST_P(SimdMla, EveryTargetEqualsReference) {
    const auto [H, C, R] = GetParam();
    const MlaCacheDims dims{H, C, R};
    const long rec = dims.rec();
    const float scale = 0.3f;
    for (bool bf16 : {false, true}) {
        std::vector<std::vector<float>> caches, qs, refs;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(kLens[i]) * rec, 90 + i));
            if (bf16) c16.push_back(round_bf16(caches.back()));
            qs.push_back(test::random_vector(size_t(H) * rec, 95 + i));
            if (bf16) round_bf16(qs.back());  // the native path rounds it; keep the reference equal
            refs.push_back(mla_reference(qs[i], caches[i].data(), kLens[i], dims, scale));
        }
        expect_every_target_matches(
            caches, c16, qs, refs, bf16,
            [&](float* const* o, const float* const* q, const auto* const* cache) {
                flash_mla_decode(o, q, cache, kLens, 3, dims, scale);
            },
            kMlaNativeTol(dims));
    }
}

// Head counts of one partial vector (3, 5), of two AVX-512 vectors (19) and of whole ones (16);
// latent sizes that end inside a vector (40) and span several column tiles (160).
INSTANTIATE_TEST_SUITE_P(Heads, SimdMla,
                         ::testing::Values(MlaCase{3, 40, 8}, MlaCase{5, 64, 8}, MlaCase{19, 40, 8},
                                           MlaCase{16, 160, 16}, MlaCase{13, 256, 32},
                                           MlaCase{5, 96, 32}),
                         [](const auto& i) {
                             return "H" + std::to_string(i.param.H) + "C" +
                                    std::to_string(i.param.C) + "R" + std::to_string(i.param.R);
                         });

// The kernel name follows the target in force and the bf16-cache path (T6_BF16_DOT).
TEST(SimdDecode, KernelNameFollowsTarget) {
    for (const auto& [target, mode] : decode_variants()) {
        ScopedSimdTarget scoped(target);
        ScopedBf16DotDecode scoped_mode(mode);
        const std::string f32 = flash_tpa_kernel_name(false), b16 = flash_tpa_kernel_name(true);
        EXPECT_NE(f32.find(simd_highway_target_name()), std::string::npos) << f32;
        if (target == SimdTarget::avx512bf16 && mode == Bf16DotDecode::on)
            EXPECT_NE(b16.find("vdpbf16ps"), std::string::npos) << b16;
        else
            EXPECT_EQ(b16.find("vdpbf16ps"), std::string::npos) << b16;
    }
}

// T6_BF16_DOT's values; automatic takes vdpbf16ps exactly where the CPU is AMD's and has it.
TEST(SimdDecode, Bf16DotDecodeSettingParsesAndFollowsTheCpu) {
    EXPECT_EQ(parse_bf16_dot_decode("auto", "x"), Bf16DotDecode::automatic);
    EXPECT_EQ(parse_bf16_dot_decode("on", "x"), Bf16DotDecode::on);
    EXPECT_EQ(parse_bf16_dot_decode("off", "x"), Bf16DotDecode::off);
    EXPECT_THROW(parse_bf16_dot_decode("yes", "x"), Error);
    ScopedBf16DotDecode automatic(Bf16DotDecode::automatic);
    EXPECT_EQ(simd_bf16_dot_decode(),
              simd_native_bf16() && cpu_signature().vendor == "AuthenticAMD");
    {
        ScopedBf16DotDecode off(Bf16DotDecode::off);
        EXPECT_FALSE(simd_bf16_dot_decode());
    }
    ScopedBf16DotDecode on(Bf16DotDecode::on);
    EXPECT_EQ(simd_bf16_dot_decode(), simd_native_bf16());
}

// Where the kernels prefetch the next block (flash_prefetch_l1): L1 by default exactly on AMD
// CPUs, set and restored by set_flash_prefetch_l1, and no number changes with it: FlashTPA (34
// heads, its prefetches spread over every step) and the flash K/V kernel (MHA: value tiles that
// prefetch) give the same outputs bit for bit either way, on every target.
TEST(SimdDecode, PrefetchIntoL1OrL2ChangesNoNumber) {
    const bool initial = flash_prefetch_l1();
    EXPECT_EQ(initial, cpu_signature().vendor == "AuthenticAMD");
    const TpaCacheDims td{34, 2, 2, 64};
    const KvCacheDims kd{12, 12, 64};
    const int len = 300;  // blocks of 32 and 16 records with a part-filled last one
    const auto tc = test::random_vector(size_t(len) * td.rec(), 1);
    const auto kc = test::random_vector(size_t(len) * kd.rec(), 2);
    const auto qa = test::random_vector(34 * 6, 3), qb = test::random_vector(6 * 64, 4);
    const auto q = test::random_vector(12 * 64, 5);
    for (const auto& [target, mode] : decode_variants()) {
        ScopedSimdTarget scoped(target);
        ScopedBf16DotDecode scoped_mode(mode);
        std::vector<float> tpa[2], kv[2];
        for (int l1 = 0; l1 < 2; l1++) {
            set_flash_prefetch_l1(l1 == 1);
            tpa[l1].assign(34 * 64, -1.0f);
            kv[l1].assign(12 * 64, -1.0f);
            float* to = tpa[l1].data();
            float* ko = kv[l1].data();
            const float* tp = tc.data();
            const float* kp = kc.data();
            const float* qp = q.data();
            const TpaQuery tq{qa.data(), qb.data(), 6};
            flash_tpa_decode(&to, &tq, &tp, &len, 1, td, 0.125f);
            flash_kv_decode(&ko, &qp, &kp, &len, 1, kd, 0.125f);
        }
        EXPECT_EQ(tpa[0], tpa[1]) << target_label(target);
        EXPECT_EQ(kv[0], kv[1]) << target_label(target);
        EXPECT_NE(tpa[0][0], -1.0f);
    }
    EXPECT_TRUE(set_flash_prefetch_l1(initial));  // returns the previous setting: the last, L1
    EXPECT_EQ(flash_prefetch_l1(), initial);
}

}  // namespace

// Flash K/V value tiles and lazy rescaling: GQA groups larger than one register tile of heads
// (22 query heads on 2 KV heads, the small-gqa shape: tiles of 6 and 5), MQA over 13 heads and
// over 23 (small-mqa: blocks of 32 tokens on AVX-512), MHA over 13 heads (tiles of distinct KV
// heads), with K rows that grow along the cache (token j's times 1 + j/16) so the running maximum
// moves many times, by steps under and over the kernel's lazy-rescale threshold; every target, f32
// and bf16 caches, against the double reference.
TEST(SimdKvTiles, GroupTilesAndAMovingMaximumEqualReference) {
    for (const KvCase c :
         {KvCase{22, 2, 64}, KvCase{13, 1, 64}, KvCase{13, 13, 32}, KvCase{23, 1, 64}}) {
        const KvCacheDims dims{c.Hq, c.Hkv, c.D};
        const float scale = 1.0f / std::sqrt(float(c.D));
        const int group = c.Hq / c.Hkv;
        for (bool bf16 : {false, true}) {
            std::vector<std::vector<float>> caches, qs, refs;
            std::vector<std::vector<uint16_t>> c16;
            for (int i = 0; i < 3; i++) {
                caches.push_back(test::random_vector(size_t(kLens[i]) * dims.rec(), 90 + i));
                for (int j = 0; j < kLens[i]; j++)
                    for (long x = 0; x < long(c.Hkv) * c.D; x++)
                        caches[i][size_t(j) * dims.rec() + size_t(x)] *= 1.0f + float(j) / 16;
                if (bf16) c16.push_back(round_bf16(caches.back()));
                qs.push_back(test::random_vector(size_t(c.Hq) * c.D, 95 + i));
                std::vector<float> ref(size_t(c.Hq) * c.D);
                const float* cc = caches[i].data();
                for (int h = 0; h < c.Hq; h++) {
                    const int kv = h / group;
                    std::vector<double> s(kLens[i]);
                    for (int j = 0; j < kLens[i]; j++) {
                        double acc = 0;
                        for (int d = 0; d < c.D; d++)
                            acc += double(qs[i][size_t(h) * c.D + d]) *
                                   cc[size_t(j) * dims.rec() + size_t(kv) * c.D + d];
                        s[j] = acc * scale;
                    }
                    softmax_apply(
                        s, c.D,
                        [&](int j, int d) {
                            return double(
                                cc[size_t(j) * dims.rec() + size_t(c.Hkv + kv) * c.D + d]);
                        },
                        ref.data() + size_t(h) * c.D);
                }
                refs.push_back(ref);
            }
            expect_every_target_matches(
                caches, c16, qs, refs, bf16,
                [&](float* const* o, const float* const* q, const auto* const* cache) {
                    flash_kv_decode(o, q, cache, kLens, 3, dims, scale);
                });
        }
    }
}

// Absorbed MLA with more head groups than one score tile holds (34 heads: a pair of groups and an
// odd one on AVX-512, five groups on AVX2) at large-mla's latent (d_c 96, d_h^R 32), the records
// growing along the cache (record j times 1 + j/64) so every head's running maximum keeps moving,
// f32 and bf16, against the double reference.
TEST(SimdMlaPanel, HeadGroupPairsAndAnOddOneWithAMovingMaximumEqualReference) {
    const MlaCacheDims dims{34, 96, 32};
    const long rec = dims.rec();
    const float scale = 1.0f / std::sqrt(float(rec));
    for (bool bf16 : {false, true}) {
        std::vector<std::vector<float>> caches, qs, refs;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(kLens[i]) * rec, 70 + i));
            for (int j = 0; j < kLens[i]; j++)
                for (long k = 0; k < rec; k++) caches[i][size_t(j) * rec + k] *= 1.0f + j / 64.0f;
            if (bf16) c16.push_back(round_bf16(caches.back()));
            qs.push_back(test::random_vector(size_t(dims.H) * rec, 75 + i));
            if (bf16) round_bf16(qs.back());
            refs.push_back(mla_reference(qs[i], caches[i].data(), kLens[i], dims, scale));
        }
        expect_every_target_matches(
            caches, c16, qs, refs, bf16,
            [&](float* const* o, const float* const* q, const auto* const* cache) {
                flash_mla_decode(o, q, cache, kLens, 3, dims, scale);
            },
            kMlaNativeTol(dims));
    }
}

// A zero query scores every record 0, so every probability is exactly 1 (exact in bf16 too) and
// the output is the mean latent: the native bf16 path (its record pairing, odd last records, the
// panel's number order) must then equal the reference to float32 rounding, like every other
// path. Latents of 64 and 160 (a last tile of two column vectors); 34 heads (a pair of head
// groups and an odd one).
TEST(SimdMlaPanel, ZeroQueryGivesTheMeanLatentOnEveryPath) {
    for (const MlaCacheDims dims : {MlaCacheDims{34, 64, 32}, MlaCacheDims{5, 160, 16}}) {
        const long rec = dims.rec();
        std::vector<std::vector<float>> caches, qs, refs;
        std::vector<std::vector<uint16_t>> c16;
        for (int i = 0; i < 3; i++) {
            caches.push_back(test::random_vector(size_t(kLens[i]) * rec, 60 + i));
            c16.push_back(round_bf16(caches.back()));
            qs.push_back(std::vector<float>(size_t(dims.H) * rec, 0.0f));
            refs.push_back(mla_reference(qs[i], caches[i].data(), kLens[i], dims, 0.5f));
        }
        expect_every_target_matches(
            caches, c16, qs, refs, true,
            [&](float* const* o, const float* const* q, const auto* const* cache) {
                flash_mla_decode(o, q, cache, kLens, 3, dims, 0.5f);
            });
    }
}

// The decoding softmax's exp (vec_math-inl.h ExpSoftmax) on every target against std::exp in
// double: within relative 1.5e-7 (about one float ulp) on [-87, 88] (scores minus a running max:
// at most 0, or at most 8 under flash_kv_decode's lazy max), exactly 1 at 0, exactly 0 below -87
// and at -inf. The row lengths leave a partial last vector.
TEST(SimdExp, SoftmaxExpMatchesStdExpOnMinus87To88AndFlushesBelow) {
    std::vector<float> x;
    for (int i = 0; i <= 200001; i++) x.push_back(float(-87.0 * i / 200001.0));
    for (int i = 1; i <= 50001; i++) x.push_back(float(88.0 * i / 50001.0));
    for (float v : {-0.0f, -1e-30f, -1e-8f, 1e-8f, -0.34657359f, -0.34657360f, 0.34657359f,
                    0.34657360f, 8.0f, 87.99999f, -86.99999f, -87.0f})
        x.push_back(v);
    const size_t n_in = x.size();
    for (float v : {-87.00001f, -88.0f, -104.0f, -1e30f, -INFINITY}) x.push_back(v);
    for (SimdTarget target : simd_available_targets()) {
        ScopedSimdTarget scoped(target);
        std::vector<float> y(x.size(), -1.0f);
        exp_softmax(y.data(), x.data(), int(x.size()));
        double worst = 0;
        for (size_t i = 0; i < n_in; i++) {
            const double e = std::exp(double(x[i]));
            worst = std::max(worst, std::fabs(double(y[i]) - e) / e);
        }
        EXPECT_LT(worst, 1.5e-7) << target_label(target);
        EXPECT_EQ(y[0], 1.0f) << target_label(target);
        for (size_t i = n_in; i < x.size(); i++)
            EXPECT_EQ(y[i], 0.0f) << target_label(target) << ", x = " << x[i];
    }
}

// The split of decoding work (flash_decode_split.cpp): each sequence's positions are covered
// exactly once; the runs (one per thread) hold equal shares of all positions (to one token), each
// run's part of a sequence is one contiguous segment, and every task may prefetch to the end of
// its segment. A segment is cut into equal tasks (to one token) of at least 256 tokens, at most 8
// per run, except for the run's last segment: its last eighth (at least 128 tokens) is a tail cut
// in halves, so its tasks never grow toward the back (to one token) and the run ends in a task of
// 128-255 tokens.
TEST(DecodeSplit, EqualContiguousSharesCutIntoEqualTasksEndingInHalvingOnes) {
    const std::vector<int> lens = {1000, 0, 5000, 77, 300, 70000};
    long total = 0;
    for (int n : lens) total += n;
    for (int threads : {1, 2, 3, 8}) {
        const flash_detail::TaskPlan plan =
            flash_detail::make_tasks(lens.data(), int(lens.size()), threads);
        ASSERT_EQ(plan.first.size(), size_t(threads) + 1);
        ASSERT_EQ(size_t(plan.first.back()), plan.tasks.size());
        std::vector<std::vector<int>> covered(lens.size());
        for (size_t i = 0; i < lens.size(); i++) covered[i].assign(size_t(lens[i]), 0);
        std::vector<int> seq_tasks(lens.size(), 0);
        for (int r = 0; r < threads; r++) {
            const int k0 = plan.first[size_t(r)], k1 = plan.first[size_t(r) + 1];
            long share = 0;
            // The run's last segment: tasks [tail_seg, k1).
            int tail_seg = k1 - 1;
            while (tail_seg > k0 &&
                   plan.tasks[size_t(tail_seg) - 1].seq == plan.tasks[size_t(k1) - 1].seq)
                tail_seg--;
            for (int k = k0; k < k1; k++) {
                const flash_detail::Task& t = plan.tasks[size_t(k)];
                seq_tasks[size_t(t.seq)]++;
                share += t.j1 - t.j0;
                for (int j = t.j0; j < t.j1; j++) covered[size_t(t.seq)][size_t(j)]++;
                ASSERT_GE(t.ahead, t.j1);
                const bool next_same = k + 1 < k1 && plan.tasks[size_t(k) + 1].seq == t.seq;
                if (next_same) {
                    const flash_detail::Task& u = plan.tasks[size_t(k) + 1];
                    EXPECT_EQ(u.j0, t.j1) << "run " << r << " task " << k;
                    EXPECT_EQ(u.ahead, t.ahead) << "run " << r << " task " << k;
                    if (k < tail_seg) {
                        EXPECT_LE(std::abs((u.j1 - u.j0) - (t.j1 - t.j0)), 1)
                            << "run " << r << " task " << k;
                        EXPECT_GE(t.j1 - t.j0, 256) << "run " << r << " task " << k;
                    } else {
                        EXPECT_LE(u.j1 - u.j0, t.j1 - t.j0 + 1) << "run " << r << " task " << k;
                        EXPECT_GE(u.j1 - u.j0, 128) << "run " << r << " task " << k;
                    }
                } else {
                    EXPECT_EQ(t.ahead, t.j1) << "run " << r << " task " << k;
                }
            }
            // A run's last segment of 2,048 tokens or more ends in a task of 128-255 tokens.
            const flash_detail::Task& end = plan.tasks[size_t(k1) - 1];
            const flash_detail::Task& seg0 = plan.tasks[size_t(tail_seg)];
            if (end.j1 - seg0.j0 >= 2048) {
                EXPECT_GE(end.j1 - end.j0, 128) << threads << " threads, run " << r;
                EXPECT_LT(end.j1 - end.j0, 256) << threads << " threads, run " << r;
            }
            // About 8 tasks per run, each segment's count rounded up (run 0 also holds the empty
            // sequence's task), and the tail's halvings: at most 9 over 70,000 tokens.
            std::vector<int> seqs;
            for (int k = k0; k < k1; k++) seqs.push_back(plan.tasks[size_t(k)].seq);
            const long segments = std::unique(seqs.begin(), seqs.end()) - seqs.begin();
            EXPECT_LE(k1 - k0, 8 + segments + 9) << threads << " threads, run " << r;
            EXPECT_LE(std::abs(share - total / threads), 1) << threads << " threads, run " << r;
        }
        for (size_t i = 0; i < lens.size(); i++) {
            EXPECT_GE(seq_tasks[i], 1) << "sequence " << i << " has no task";
            for (int j = 0; j < lens[i]; j++)
                ASSERT_EQ(covered[i][size_t(j)], 1) << "sequence " << i << " position " << j;
        }
    }
}

// run_split's result does not depend on which thread ran which task: with one thread or the
// other held up at the start (so that the other steals from its run, checked) and with neither,
// the merged outputs are the same to the bit. Each task's partial sums numbers that round (sin j /
// 7), so partials grouped differently would show in the last bits.
TEST(DecodeSplit, MergedOutputIsTheSameWhicheverThreadRanATask) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    const std::vector<int> lens = {9000, 3000};
    std::vector<float> runs_out[3];
    for (int held = -1; held < 2; held++) {
        std::vector<float> out0(4 * 2), out1(4 * 2);
        float* outs[2] = {out0.data(), out1.data()};
        std::atomic<int> stolen_from_held{0};
        std::atomic<bool> first_seen[2] = {false, false};
        flash_detail::run_split(
            outs, lens.data(), 2, 4, 2,
            [&](const flash_detail::Task& t, flash_detail::Partial p, std::vector<float>&,
                std::vector<float>&) {
                const int me = omp_get_thread_num();
                // The held thread's first task waits until the other has stolen from its run
                // (at most 10 s: a fixed 50 ms sleep was not always enough while other tests
                // shared the two cores).
                if (me == held && !first_seen[me].exchange(true)) {
                    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                    while (stolen_from_held.load() == 0 && std::chrono::steady_clock::now() < until)
                        std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
                for (int h = 0; h < 4; h++) {
                    p.m[h] = std::max(p.m[h], float(h) * 0.25f);
                    for (int j = t.j0; j < t.j1; j++) {
                        p.l[h] += 1.0f;
                        p.acc[h * 2] += std::sin(float(j + h)) / 7.0f;
                        p.acc[h * 2 + 1] += float(j % 5) / 3.0f;
                    }
                }
                // Run 0 is sequence 0's [0, 6000), run 1 the rest.
                const bool run0 = t.seq == 0 && t.j0 < 6000;
                if (held >= 0 && me != held && run0 == (held == 0)) stolen_from_held++;
            });
        EXPECT_GT(std::fabs(out0[0]), 0.0f);
        if (held >= 0) {
            EXPECT_GE(stolen_from_held.load(), 1) << "thread " << held << " held up";
        }
        runs_out[held + 1] = out0;
        runs_out[held + 1].insert(runs_out[held + 1].end(), out1.begin(), out1.end());
    }
    omp_set_num_threads(saved);
    EXPECT_EQ(runs_out[0], runs_out[1]) << "thread 0 held up";
    EXPECT_EQ(runs_out[0], runs_out[2]) << "thread 1 held up";
}

// run_split runs every task exactly once, also when one thread is held up in its first task: the
// other takes (steals) the rest of the held thread's run. Thread 0's first task waits until every
// other task has run (at most 10 s, which only a split without stealing reaches).
TEST(DecodeSplit, AnotherThreadFinishesTheRunOfAThreadHeldUp) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    const std::vector<int> lens = {9000, 3000};
    const flash_detail::TaskPlan plan = flash_detail::make_tasks(lens.data(), 2, 2);
    const int ntasks = int(plan.tasks.size());
    ASSERT_GE(plan.first[1] - plan.first[0], 3);  // the held run has tasks to steal
    std::vector<std::atomic<int>> runs(static_cast<size_t>(ntasks));
    std::atomic<int> done{0}, by_others_in_run0{0};
    bool waited_out = false;
    std::vector<float> out0(4 * 2), out1(4 * 2);
    float* outs[2] = {out0.data(), out1.data()};
    flash_detail::run_split(
        outs, lens.data(), 2, 4, 2,
        [&](const flash_detail::Task& t, flash_detail::Partial p, std::vector<float>&,
            std::vector<float>&) {
            int k = 0;
            while (k < ntasks &&
                   !(plan.tasks[size_t(k)].seq == t.seq && plan.tasks[size_t(k)].j0 == t.j0))
                k++;
            ASSERT_LT(k, ntasks);
            runs[size_t(k)]++;
            if (omp_get_thread_num() == 0 && k == plan.first[0]) {
                const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (done.load() < ntasks - 1 && std::chrono::steady_clock::now() < until)
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                waited_out = done.load() < ntasks - 1;
            } else if (omp_get_thread_num() != 0 && k < plan.first[1]) {
                by_others_in_run0++;
            }
            // Continues the partial (as the kernels do) with weight 1 per position j and value
            // (j mod 7, 1): the merge gives the mean of j mod 7 over the sequence and 1, which a
            // partial lost or counted twice would change (the sums are exact in float32).
            for (int h = 0; h < 4; h++) {
                p.m[h] = 0.0f;
                p.l[h] += float(t.j1 - t.j0);
                for (int j = t.j0; j < t.j1; j++) p.acc[h * 2] += float(j % 7);
                p.acc[h * 2 + 1] += float(t.j1 - t.j0);
            }
            done++;
        });
    omp_set_num_threads(saved);
    EXPECT_FALSE(waited_out) << "no other thread took the held thread's tasks";
    EXPECT_GE(by_others_in_run0.load(), 2);
    for (int k = 0; k < ntasks; k++) EXPECT_EQ(runs[size_t(k)].load(), 1) << "task " << k;
    float mean[2] = {0.0f, 0.0f};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < lens[size_t(i)]; j++) mean[i] += float(j % 7);
        mean[i] /= float(lens[size_t(i)]);
    }
    for (int h = 0; h < 4; h++) {
        EXPECT_FLOAT_EQ(out0[size_t(h) * 2], mean[0]) << "head " << h;
        EXPECT_FLOAT_EQ(out1[size_t(h) * 2], mean[1]) << "head " << h;
        EXPECT_FLOAT_EQ(out0[size_t(h) * 2 + 1], 1.0f) << "head " << h;
        EXPECT_FLOAT_EQ(out1[size_t(h) * 2 + 1], 1.0f) << "head " << h;
    }
}
