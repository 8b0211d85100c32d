// The study library: a study interrupted mid-run resumes every kind from its checkpoint and ends
// exactly where an uninterrupted one does; the equal-parameter models; the SVG plot helpers.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/equal_params.h"
#include "study/study.h"
#include "study/svg_plot.h"
#include "test_train_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

study::StudyPlan mini_plan(const std::string& data, const std::string& out) {
    study::StudyPlan p;
    p.base.model = config_from_json({{"attention", "mha"},
                                     {"vocab_size", 64},
                                     {"n_layer", 1},
                                     {"n_embd", 32},
                                     {"n_head", 2},
                                     {"head_dim", 16},
                                     {"block_size", 32},
                                     {"q_lora_rank", 16},
                                     {"kv_lora_rank", 12},
                                     {"qk_rope_head_dim", 8},
                                     {"v_head_dim", 16}},
                                    "mini");
    p.base.model_given = true;
    TrainConfig& t = p.base.train;
    t.data = data;
    t.out_dir = out;
    t.batch_size = 2;
    t.seq_len = 16;
    t.max_iters = 4;
    t.eval_interval = 2;
    t.eval_iters = 2;
    t.log_interval = 1;
    t.warmup_iters = 1;
    t.threads = 1;
    p.kinds = {"mha", "t6"};
    p.decode_context = 8;
    p.decode_steps = 2;
    return p;
}

}  // namespace

TEST(Study, InterruptedStudyResumesExactly) {
    test::TempDir tmp;
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 64, 4000, 1000);
    const study::StudyPlan a = mini_plan(tmp.file("data"), tmp.file("a"));
    const study::StudyPlan b = mini_plan(tmp.file("data"), tmp.file("b"));

    study::StudyResult r = study::run_study(a, nullptr, /*stop_at=*/3);  // as if killed at step 3
    EXPECT_EQ(r.trained.size(), 2u);
    EXPECT_TRUE(r.kinds.empty());
    for (const char* k : {"mha", "t6"}) {
        EXPECT_FALSE(fs::exists(a.run_dir(k) + "/done.json")) << k;
        EXPECT_TRUE(fs::exists(a.run_dir(k) + "/ckpt_000002/COMPLETE")) << k;
    }
    r = study::run_study(a, nullptr);  // resumes both from step 2
    ASSERT_EQ(r.kinds.size(), 2u);
    EXPECT_EQ(r.trained.size(), 2u);
    const study::StudyResult ref = study::run_study(b, nullptr);  // never interrupted
    ASSERT_EQ(ref.kinds.size(), 2u);
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(r.kinds[i].steps, 4);
        EXPECT_EQ(r.kinds[i].final_val_loss, ref.kinds[i].final_val_loss) << r.kinds[i].kind;
        EXPECT_EQ(r.kinds[i].best_val_loss, ref.kinds[i].best_val_loss) << r.kinds[i].kind;
        EXPECT_EQ(r.kinds[i].train_loss, ref.kinds[i].train_loss) << r.kinds[i].kind;
    }
    // Finished kinds are not retrained.
    r = study::run_study(a, nullptr);
    EXPECT_TRUE(r.trained.empty());
    EXPECT_EQ(r.skipped.size(), 2u);
    EXPECT_TRUE(fs::exists(a.report_path() + "/report.md"));
}

TEST(Study, KindModelsFollowTheEqualParameterRule) {
    test::TempDir tmp;
    const study::StudyPlan p = mini_plan(tmp.file("data"), tmp.file("o"));
    const long target = 4L * 32 * 32;
    for (const auto& k : study::all_kinds()) {
        const ModelConfig m = study::kind_model(p, k);
        EXPECT_EQ(m.attention, study::kind_attention(k, "test"));
        EXPECT_EQ(m.n_embd, 32);
        EXPECT_EQ(m.n_layer, 1);
        EXPECT_EQ(m.n_head, equal_param_heads(p.base.model, m.attention)) << k;
        // One head more or fewer is no closer to MHA's attention parameters.
        const long d = std::labs(attention_params_per_layer(m) - target);
        for (int dh : {-1, 1}) {
            ModelConfig o = m;
            o.n_head += (m.attention == AttentionKind::gqa ? 2 : 1) * dh;
            if (o.n_head < 1) continue;
            EXPECT_LE(d, std::labs(attention_params_per_layer(o) - target)) << k;
        }
    }
    EXPECT_EQ(study::kind_model(p, "mha").n_head, 2);
    EXPECT_THROW(study::kind_attention("foo", "test"), std::exception);
}

TEST(Study, NiceTicksAndLabels) {
    EXPECT_EQ(study::nice_ticks(0, 1e6, 5), (std::vector<double>{0, 2e5, 4e5, 6e5, 8e5, 1e6}));
    const auto t = study::nice_ticks(1.43, 1.91, 6);
    ASSERT_GE(t.size(), 4u);
    EXPECT_GE(t.front(), 1.43);
    EXPECT_LE(t.back(), 1.91);
    EXPECT_EQ(study::tick_label(1.5e6, 5e5), "1.5M");
    EXPECT_EQ(study::tick_label(250000, 50000), "250k");
    EXPECT_EQ(study::tick_label(1.5, 0.1), "1.5");
    EXPECT_EQ(study::tick_label(1.75, 0.05), "1.75");
    EXPECT_EQ(study::tick_label(5000, 5000, 2e4), "5k");  // the axis's unit
    const std::string svg = study::svg_line_chart(
        "a <b>", {{"p", "x", "y", {{"s&1", "#000", {0, 1, 2}, {3, 2, 1}, false, true}}}});
    EXPECT_NE(svg.find("a &lt;b&gt;"), std::string::npos);
    EXPECT_NE(svg.find("s&amp;1"), std::string::npos);
    EXPECT_EQ(svg.find("nan"), std::string::npos);
}
