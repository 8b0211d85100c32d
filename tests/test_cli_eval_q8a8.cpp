// t6 eval ppl --weights q8a8|q4a8 end to end: int8 activations times q8 / q4 weights exist only
// in the decoder, so these types score through it (implying --cache f32); the perplexity is
// finite, near the f32 model's and the dequantized q8 / q4 model's (which it differs from: the
// activations are rounded too); a `t6 quantize` checkpoint scored with the a8 type of its scheme
// equals the float checkpoint quantized at load; bad combinations are one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;
using test::run_t6;

namespace {

TEST(CliEvalQ8a8, ScoresThroughTheDecoder) {
    test::TempDir dir;  // random weights: the official init zeroes attention's output
    const std::string ckpt =
        test::write_tiny_checkpoint(dir, "model.safetensors", AttentionKind::tpa, 64, 7);
    {
        std::ofstream(dir.file("text.txt"))
            << "To be, or not to be, that is the question: whether 'tis nobler in the mind to "
               "suffer the slings and arrows of outrageous fortune.\n";
    }
    const auto eval = [&](const std::string& model, const std::string& extra) {
        auto r = run_t6("eval ppl --model " + model + " --text " + dir.file("text.txt") +
                        " --context 32 --stride 16 --json" + extra);
        EXPECT_EQ(r.status, 0) << extra << ": " << r.err;
        return r.status == 0 ? test::last_json(r.out) : nlohmann::json{};
    };
    const auto ppl = [](const nlohmann::json& j) { return j.value("perplexity", NAN); };
    const double f32 = ppl(eval(ckpt, " --cache f32"));
    for (const std::string type : {"q8", "q4"}) {
        const nlohmann::json a8 = eval(ckpt, " --weights " + type + "a8");
        EXPECT_EQ(a8.value("kv_cache", ""), "f32") << "--weights " << type << "a8 implies --cache";
        EXPECT_EQ(a8.value("weights", ""), type + "a8");
        const double p = ppl(a8), deq = ppl(eval(ckpt, " --weights " + type + " --cache f32"));
        ASSERT_TRUE(std::isfinite(p)) << type;
        // Random weights (perplexity ~1250 of 256 tokens) are harder on 4 bits than trained ones.
        EXPECT_NEAR(p / f32, 1.0, type == "q8" ? 0.03 : 0.08)
            << type << "a8 " << p << " f32 " << f32;
        std::printf("%sa8 %.4f, %s %.4f, f32 %.4f\n", type.c_str(), p, type.c_str(), deq, f32);
        EXPECT_NE(p, deq) << type << "a8 rounds the activations";
        EXPECT_NEAR(p / deq, 1.0, 0.01) << type << "a8 " << p << " " << type << " " << deq;
        // With the q8 cache too.
        EXPECT_NEAR(ppl(eval(ckpt, " --weights " + type + "a8 --cache q8")) / p, 1.0, 0.03);
    }
    // A `t6 quantize` checkpoint: its stored codes with int8 activations equal quantizing at load.
    const std::string q8 = dir.file("q8.safetensors");
    auto r = run_t6("quantize " + ckpt + " --type q8 --out " + q8);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_DOUBLE_EQ(ppl(eval(q8, " --weights q8a8")), ppl(eval(ckpt, " --weights q8a8")));

    const std::string base = "eval ppl --text " + dir.file("text.txt") + " --model ";
    test::expect_one_line_error(run_t6(base + ckpt + " --weights q8a8 --cache q9"),
                                "cache type 'q9' is not f32, bf16 or q8");
    test::expect_one_line_error(run_t6(base + ckpt + " --weights q5a8"), "unknown type 'q5a8'");
    test::expect_one_line_error(run_t6(base + q8 + " --weights q4a8"),
                                "holds q8 weights, not q4a8");
    test::expect_one_line_error(run_t6(base + q8 + " --weights q8"), "is quantized already");
}

}  // namespace
