// Quantized weights (kernels/quant.h, model/quantize.h):
//   - q8 / q4 quantization is within half a step of the weights, all-zero and constant blocks are
//     exact, partial blocks (rows not a multiple of 32) work;
//   - the quantized linear layer equals the scalar reference over the same codes (<= 1e-5
//     relative) on every SIMD target, for the register tilings (N = 1, 2, 3, 5, 16), the
//     dequantize-then-GEMM path (N > 16), partial blocks, odd row counts, beta 0 and 1;
//   - decoding from q8 / q4 weights equals the full forward of the dequantized model (<= 1e-4)
//     for every attention kind, prefill chunks and steps, on every SIMD target;
//   - MLA's quantized up-projections: the row-range kernels (W_UK^T row sum, W_UV dot products)
//     equal double-precision references on every target, batched steps read the codes, and
//     quantize -> save -> load (and a version 1 file without them) is bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/simd.h"
#include "infer/decoder.h"
#include "kernels/quant.h"
#include "kernels/quant_rowsum.h"
#include "model/model.h"
#include "model/quantize.h"
#include "model/quantize_io.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

std::vector<float> quant_input(int rows, int cols, unsigned seed) {
    auto w = test::random_vector(size_t(rows) * cols, seed);
    // An all-zero block and a constant one (row 0), both must come back exactly.
    for (int c = 0; c < std::min(cols, 32); c++) w[c] = 0.0f;
    if (cols >= 64)
        for (int c = 32; c < 64; c++) w[c] = 0.375f;
    return w;
}

TEST(QuantFormat, DequantizedWithinHalfAStep) {
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (int cols : {32, 85, 256}) {
            const int rows = 7;
            auto w = quant_input(rows, cols, 5);
            QuantMatrix m;
            quantize_matrix(m, w.data(), rows, cols, s);
            EXPECT_EQ(m.blocks_per_row(), (cols + 31) / 32);
            std::vector<float> back(w.size());
            dequantize_matrix(m, back.data());
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    const size_t blk = size_t(r) * m.blocks_per_row() + c / 32;
                    const float step = m.scale[blk];
                    const float e = std::fabs(back[size_t(r) * cols + c] - w[size_t(r) * cols + c]);
                    ASSERT_LE(e, 0.5f * step * 1.0001f + 1e-7f)
                        << quant_scheme_name(s) << " row " << r << " col " << c;
                }
            for (int c = 0; c < std::min(cols, 32); c++) EXPECT_EQ(back[c], 0.0f);
            if (cols >= 64) {
                for (int c = 32; c < 64; c++) EXPECT_EQ(back[c], 0.375f) << quant_scheme_name(s);
            }
            EXPECT_EQ(m.bytes(), m.blocks() * (s == QuantScheme::q8 ? 36u : 24u));
        }
}

TEST(QuantFormat, NonFiniteWeightIsAnError) {
    std::vector<float> w(64, 0.5f);
    w[40] = NAN;
    QuantMatrix m;
    EXPECT_THROW(quantize_matrix(m, w.data(), 2, 32, QuantScheme::q8), Error);
}

class QuantKernel : public ::testing::TestWithParam<SimdTarget> {};

TEST_P(QuantKernel, EqualsScalarReference) {
    ScopedSimdTarget target(GetParam());
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (int cols : {32, 85, 264, 600})
            for (int N : {1, 2, 3, 5, 16, 40})
                for (float beta : {0.0f, 1.0f})
                    // 1000 rows of 264: large enough for the threads' ranges of rows.
                    for (int rows : {131, 1000}) {
                        auto w = quant_input(rows, cols, 9);
                        QuantMatrix m;
                        quantize_matrix(m, w.data(), rows, cols, s);
                        auto x = test::random_vector(size_t(N) * cols, 11);
                        auto init = test::random_vector(size_t(N) * rows, 13);
                        std::vector<float> got = init, ref = init;
                        linear_quant(got.data(), x.data(), m, N, beta);
                        linear_quant_reference(ref.data(), x.data(), m, N, beta);
                        EXPECT_LT(test::rel_error(got.data(), ref.data(), ref.size()), 1e-5)
                            << quant_scheme_name(s) << " cols " << cols << " N " << N << " beta "
                            << beta << " rows " << rows;
                        if (N <= 16) continue;
                        // The few-row kernel alone at this N too.
                        got = init;
                        linear_quant_few_rows(got.data(), x.data(), m, N, beta);
                        EXPECT_LT(test::rel_error(got.data(), ref.data(), ref.size()), 1e-5);
                    }
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantKernel, ::testing::ValuesIn(simd_available_targets()),
                         [](const auto& info) {
                             return std::string(simd_target_name(info.param));
                         });

const AttentionKind kKinds[] = {AttentionKind::mha, AttentionKind::mqa,        AttentionKind::gqa,
                                AttentionKind::tpa, AttentionKind::tpa_kvonly, AttentionKind::mla};

class QuantDecode : public ::testing::TestWithParam<std::tuple<SimdTarget, QuantScheme>> {};

// MLA with latents wider than a block (d_c 72: 2 whole blocks and a partial one; d'_c 40), so
// the quantized up-projections' kernels run their vector passes, not only the partial block.
ModelConfig wide_mla_config() {
    ModelConfig c = test::tiny_test_config(AttentionKind::mla, 64);
    c.kv_lora_rank = 72;
    c.q_lora_rank = 40;
    return c;
}

TEST_P(QuantDecode, EqualsForwardOfDequantizedModel) {
    ScopedSimdTarget target(std::get<0>(GetParam()));
    const QuantScheme scheme = std::get<1>(GetParam());
    std::vector<ModelConfig> cfgs;
    // n_embd 64: rows of 2 blocks; the MLP's hidden width 170 ends in a partial block.
    for (AttentionKind kind : kKinds) cfgs.push_back(test::tiny_test_config(kind, 64));
    cfgs.push_back(wide_mla_config());
    for (const ModelConfig& cfg : cfgs) {
        const AttentionKind kind = cfg.attention;
        Model model(cfg);
        test::randomize_weights(model, 7);
        const int T = 30, V = cfg.vocab_size;
        std::vector<int32_t> tokens(T);
        for (int t = 0; t < T; t++) tokens[t] = int32_t((t * 37 + 5) % V);
        Decoder dec(model, 1, 64, CacheType::f32,
                    scheme == QuantScheme::q8 ? WeightType::q8 : WeightType::q4);
        // The reference: the float32 model with the dequantized weights.
        Model deq(cfg);
        std::copy(model.params(), model.params() + model.num_params(), deq.params());
        apply_dequantized(deq, quantize_model(model, scheme));
        deq.forward(tokens.data(), nullptr, 1, T);
        dec.chunk_tokens = 20;  // the second chunk (N = 20 rows) takes the GEMM path
        const int prompt = 25;
        std::vector<float> got(size_t(T) * V);
        dec.append(0, tokens.data(), prompt, got.data(), true);
        for (int t = prompt; t < T; t++) {
            int slot = 0;
            dec.step(&slot, &tokens[t], 1, got.data() + size_t(t) * V);
        }
        for (int t = 0; t < T; t++) {
            const double e =
                test::rel_error(got.data() + size_t(t) * V, deq.logits() + size_t(t) * V, V);
            ASSERT_LT(e, 1e-4) << attention_kind_name(kind) << " position " << t;
        }
        // Quantization changed the logits (the test compares against the right model).
        model.forward(tokens.data(), nullptr, 1, T);
        EXPECT_GT(test::rel_error(got.data(), model.logits(), size_t(T) * V), 1e-4);
        EXPECT_LT(dec.weight_bytes_per_step(), 4.0 * double(model.num_params()) / 3.0);
    }
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantDecode,
                         ::testing::Combine(::testing::ValuesIn(simd_available_targets()),
                                            ::testing::Values(QuantScheme::q8, QuantScheme::q4)),
                         [](const auto& info) {
                             return std::string(simd_target_name(std::get<0>(info.param))) + "_" +
                                    quant_scheme_name(std::get<1>(info.param));
                         });

}  // namespace

// ---- MLA's quantized up-projections (q_b_proj, kv_b_proj) ----

namespace {

// The double-precision products over the dequantized rows [r0, r0 + rows) of W.
std::vector<double> row_sum_double(const float* x, const QuantMatrix& W, int r0, int rows) {
    std::vector<double> out(size_t(W.cols), 0.0);
    std::vector<float> w(size_t(W.cols));
    for (int r = 0; r < rows; r++) {
        dequantize_row(W, r0 + r, w.data());
        for (int c = 0; c < W.cols; c++) out[size_t(c)] += double(x[r]) * double(w[size_t(c)]);
    }
    return out;
}

double rel_error_d(const float* got, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num / den);
}

class QuantRows : public ::testing::TestWithParam<SimdTarget> {};

// W_UK[h]^T q_nope (sum of scaled rows) and W_UV[h] o_lat (dot products over a row range) equal
// the double-precision products over the dequantized codes; columns past W.cols are not written.
TEST_P(QuantRows, RowSumAndRowsDotEqualDoubleReference) {
    ScopedSimdTarget target(GetParam());
    // 256: whole passes (AVX-512: one of 8 blocks; AVX2: 4 of 2); 200: 6 blocks and a partial
    // one (AVX-512: single-block passes); 85: partial last block; 6: one partial block only.
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (int cols : {256, 200, 85, 6}) {
            const int rows = 3 * 40;  // three heads of D 24 + Dv 16
            auto w = quant_input(rows, cols, 21);
            QuantMatrix m;
            quantize_matrix(m, w.data(), rows, cols, s);
            for (int h = 0; h < 3; h++) {
                const int r0 = h * 40;
                const std::string what = cat(quant_scheme_name(s), " cols ", cols, " head ", h);
                // Row sum over W_UK[h] (24 rows).
                const auto x = test::random_vector(24, 31 + unsigned(h));
                std::vector<float> got(size_t(cols) + 8, 7.0f);
                std::vector<float> ref(static_cast<size_t>(cols));
                quant_row_sum(got.data(), x.data(), m, r0, 24);
                const auto dref = row_sum_double(x.data(), m, r0, 24);
                EXPECT_LE(rel_error_d(got.data(), dref), 1e-5) << what;
                for (int c = cols; c < cols + 8; c++) ASSERT_EQ(got[size_t(c)], 7.0f) << what;
                quant_row_sum_reference(ref.data(), x.data(), m, r0, 24);
                EXPECT_LE(rel_error_d(ref.data(), dref), 1e-5) << what;
                // Dot products with W_UV[h] (16 rows).
                const auto o = test::random_vector(size_t(cols), 41 + unsigned(h));
                std::vector<float> y(16 + 4, 7.0f);
                std::vector<float> row(static_cast<size_t>(cols));
                quant_rows_dot(y.data(), o.data(), m, r0 + 24, 16);
                std::vector<double> yref(16, 0.0);
                for (int r = 0; r < 16; r++) {
                    dequantize_row(m, r0 + 24 + r, row.data());
                    for (int c = 0; c < cols; c++)
                        yref[size_t(r)] += double(o[size_t(c)]) * double(row[size_t(c)]);
                }
                EXPECT_LE(rel_error_d(y.data(), yref), 1e-5) << what;
                for (int r = 16; r < 20; r++) ASSERT_EQ(y[size_t(r)], 7.0f) << what;
            }
            // A range past the matrix is an error, not a read out of bounds.
            std::vector<float> out(static_cast<size_t>(cols));
            EXPECT_THROW(quant_row_sum(out.data(), out.data(), m, rows - 4, 8), Error);
        }
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantRows, ::testing::ValuesIn(simd_available_targets()),
                         [](const auto& info) {
                             return std::string(simd_target_name(info.param));
                         });

// The decoder reads q_b_proj and kv_b_proj quantized: batched steps (two sequences, the
// per-(token, head) products) equal the forward of the fully dequantized model, and differ from a
// model whose up-projections stayed float32. Every weight type quantizes them
// (weight_bytes_per_step counts their codes).
TEST(QuantMla, UpProjectionsAreQuantizedInBatchedSteps) {
    const ModelConfig cfg = wide_mla_config();
    Model model(cfg);
    test::randomize_weights(model, 11);
    const int T = 12, prompt = 8, V = cfg.vocab_size;
    std::vector<int32_t> seq[2];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T; t++) seq[b].push_back(int32_t((t * 31 + 7 + 13 * b) % V));
    for (QuantScheme scheme : {QuantScheme::q8, QuantScheme::q4}) {
        const QuantizedWeights q = quantize_model(model, scheme);
        int found = 0;
        for (const auto& t : q.targets)
            found += t.core && (t.name.find("q_b_proj") != std::string::npos ||
                                t.name.find("kv_b_proj") != std::string::npos);
        EXPECT_EQ(found, 2 * cfg.n_layer);
        Model deq(cfg), partial(cfg);  // everything dequantized / all but the up-projections
        std::copy(model.params(), model.params() + model.num_params(), deq.params());
        apply_dequantized(deq, q);
        std::copy(deq.params(), deq.params() + deq.num_params(), partial.params());
        for (const auto& t : q.targets)
            if (t.core)
                std::copy(model.params() + t.offset,
                          model.params() + t.offset + size_t(t.rows) * t.cols,
                          partial.params() + t.offset);
        Decoder dec(model, 2, 32, CacheType::f32,
                    scheme == QuantScheme::q8 ? WeightType::q8 : WeightType::q4);
        std::vector<float> got[2] = {std::vector<float>(size_t(T) * V),
                                     std::vector<float>(size_t(T) * V)};
        for (int b = 0; b < 2; b++) dec.append(b, seq[b].data(), prompt, got[b].data(), true);
        std::vector<float> step(2 * size_t(V));
        for (int t = prompt; t < T; t++) {
            const int slots[2] = {0, 1};
            const int32_t toks[2] = {seq[0][size_t(t)], seq[1][size_t(t)]};
            dec.step(slots, toks, 2, step.data());
            for (int b = 0; b < 2; b++)
                std::copy(step.begin() + b * V, step.begin() + (b + 1) * V,
                          got[b].begin() + long(t) * V);
        }
        for (int b = 0; b < 2; b++) {
            deq.forward(seq[b].data(), nullptr, 1, T);
            for (int t = 0; t < T; t++)
                ASSERT_LT(
                    test::rel_error(got[b].data() + size_t(t) * V, deq.logits() + size_t(t) * V, V),
                    1e-4)
                    << quant_scheme_name(scheme) << " sequence " << b << " position " << t;
            if (scheme == QuantScheme::q4) continue;  // (q8's smaller error suffices)
            partial.forward(seq[b].data(), nullptr, 1, T);
            EXPECT_GT(test::rel_error(got[b].data(), partial.logits(), size_t(T) * V), 1e-3)
                << quant_scheme_name(scheme);
        }
        // The step streams the up-projections' codes, not their float32 copies.
        double core_numel = 0;
        for (const auto& t : q.targets) core_numel += t.core ? double(t.rows) * t.cols : 0.0;
        EXPECT_EQ(dec.weight_bytes_per_step(), double(q.bytes()) + (double(model.num_params()) -
                                                                    [&] {
                                                                        double n = 0;
                                                                        for (const auto& m : q.mats)
                                                                            n += double(m.rows) *
                                                                                 m.cols;
                                                                        return n;
                                                                    }()) *
                                                                       4.0);
        EXPECT_GT(core_numel, 0.0);
        // q8a8 reads them quantized too (q_b_proj with int8 activations): near q8.
        if (scheme == QuantScheme::q4) continue;
        Decoder a8(model, 1, 32, CacheType::f32, WeightType::q8a8);
        std::vector<float> la8(size_t(T) * V);
        a8.append(0, seq[0].data(), T, la8.data(), true);
        EXPECT_LT(test::rel_error(la8.data(), got[0].data(), la8.size()), 0.03);
    }
}

// quantize -> save -> load is bit-exact for the up-projections' codes; a version 1 file (the
// up-projections stored float32, as `t6 quantize` wrote them before) loads with them quantized at
// load: the same codes, the same dequantized model and the same decoding as the version 2 file.
TEST(QuantMla, CheckpointRoundTripAndVersion1File) {
    test::TempDir dir;
    const ModelConfig cfg = wide_mla_config();
    Model model(cfg);
    test::randomize_weights(model, 5);
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4}) {
        const QuantizedWeights q = quantize_model(model, s);
        const std::string v2 = dir.file(cat("mla_", quant_scheme_name(s), ".st"));
        const std::string v1 = dir.file(cat("mla_v1_", quant_scheme_name(s), ".st"));
        save_quantized(v2, model, q);
        // The version 1 file: the core matrices as F32 tensors of the original weights.
        {
            SafeTensorsReader r(v2);
            std::map<std::string, std::vector<uint8_t>> data;
            std::vector<TensorToWrite> w;
            std::vector<std::string> core;
            for (const auto& t : q.targets)
                if (t.core) core.push_back(t.name);
            int dropped = 0;
            for (const auto& t : r.tensors()) {
                bool is_core = false;
                for (const auto& c : core) is_core |= t.name.rfind(c + ".q", 0) == 0;
                if (is_core) {
                    dropped++;
                    continue;
                }
                w.push_back({t.name, t.dtype, t.shape, r.raw(t.name)});
            }
            EXPECT_EQ(dropped, int(core.size()) * (s == QuantScheme::q8 ? 2 : 3));
            for (const auto& c : core) {
                const ParamSpec& p = model.layout().at(c);
                w.push_back({c, DType::F32, p.shape, model.params() + p.offset});
            }
            auto meta = r.metadata();
            meta["quantization"] =
                cat(R"({"version":1,"scheme":")", quant_scheme_name(s), R"(","block_size":32})");
            write_safetensors(v1, w, meta);
        }
        QuantizedCheckpoint b2 = load_quantized(v2), b1 = load_quantized(v1);
        for (const QuantizedCheckpoint* b : {&b2, &b1}) {
            ASSERT_EQ(b->weights->mats.size(), q.mats.size());
            for (size_t i = 0; i < q.mats.size(); i++) {
                const QuantMatrix &x = q.mats[i], &y = b->weights->mats[i];
                ASSERT_EQ(x.codes.size(), y.codes.size()) << q.targets[i].name;
                EXPECT_EQ(std::memcmp(x.codes.data(), y.codes.data(), x.codes.size()), 0)
                    << q.targets[i].name;
                EXPECT_EQ(std::memcmp(x.scale.data(), y.scale.data(), x.scale.size() * 4), 0);
                if (s == QuantScheme::q4) {
                    EXPECT_EQ(std::memcmp(x.min.data(), y.min.data(), x.min.size() * 4), 0);
                }
            }
            EXPECT_EQ(
                std::memcmp(b->model->params(), b2.model->params(), b2.model->num_params() * 4), 0);
        }
        // A version 1 file without the float32 tensor, or with a NaN in it, names the tensor.
        for (const bool nan : {false, true}) {
            SafeTensorsReader r(v1);
            std::vector<TensorToWrite> w;
            const std::string bad = "transformer.h.1.attn.kv_b_proj.weight";
            std::vector<float> poisoned;
            for (const auto& t : r.tensors()) {
                if (t.name != bad) {
                    w.push_back({t.name, t.dtype, t.shape, r.raw(t.name)});
                } else if (nan) {
                    const float* f = reinterpret_cast<const float*>(r.raw(t.name));
                    poisoned.assign(f, f + (t.end - t.begin) / 4);
                    poisoned[5] = NAN;
                    w.push_back({t.name, t.dtype, t.shape, poisoned.data()});
                }
            }
            write_safetensors(dir.file("bad.st"), w, r.metadata());
            try {
                load_quantized(dir.file("bad.st"));
                ADD_FAILURE() << "loaded a damaged version 1 file (" << bad << ")";
            } catch (const Error& e) {
                const std::string m = e.what();
                EXPECT_NE(m.find(bad), std::string::npos) << m;
                EXPECT_NE(m.find(nan ? "not finite" : "missing"), std::string::npos) << m;
                EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            }
        }
        // Decoding from either file equals decoding from the weights quantized at load.
        std::vector<int32_t> toks = {1, 7, 3, 9, 22, 4, 60, 2};
        const int V = cfg.vocab_size;
        std::vector<float> l0(static_cast<size_t>(V)), l1(l0), l2(l0);
        Decoder d0(model, 1, 16, CacheType::f32,
                   s == QuantScheme::q8 ? WeightType::q8 : WeightType::q4);
        Decoder d1(*b1.model, 1, 16, CacheType::f32, b1.weights);
        Decoder d2(*b2.model, 1, 16, CacheType::f32, b2.weights);
        d0.append(0, toks.data(), int(toks.size()), l0.data());
        d1.append(0, toks.data(), int(toks.size()), l1.data());
        d2.append(0, toks.data(), int(toks.size()), l2.data());
        EXPECT_EQ(std::memcmp(l0.data(), l2.data(), l0.size() * 4), 0);
        EXPECT_EQ(std::memcmp(l1.data(), l2.data(), l1.size() * 4), 0);
    }
}

}  // namespace
