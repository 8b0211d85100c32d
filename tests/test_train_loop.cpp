// The training loop: it learns, it resumes bit for bit from its checkpoints, it never resumes
// from a checkpoint that was interrupted or damaged, and bad configs are one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "model/checkpoint.h"
#include "test_train_util.h"
#include "test_util.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

template <typename F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
    try {
        f();
        ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
        for (const auto& s : fragments)
            EXPECT_NE(msg.find(s), std::string::npos) << "'" << s << "' not in: " << msg;
    }
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
    std::ifstream in(path);
    std::vector<nlohmann::json> v;
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) v.push_back(nlohmann::json::parse(line));
    return v;
}

TEST(Training, TinyModelLearnsRepetitiveData) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("out"));
    s.train.max_iters = 40;
    s.train.eval_interval = 40;
    s.train.eval_iters = 4;
    Trainer tr(s, nullptr);
    const TrainResult r = tr.run();
    ASSERT_EQ(r.losses.size(), 40u);
    const float first = r.losses.front();
    EXPECT_GT(first, 3.5f);  // about ln(64) = 4.16 at the start
    float last5 = 0;
    for (int i = 35; i < 40; i++) last5 += r.losses[i] / 5;
    EXPECT_LT(last5, 0.6f * first) << "loss went from " << first << " to " << last5;
    EXPECT_LT(r.final_val_loss, 0.6 * first);
    EXPECT_EQ(r.best_step, 40);
    // Feedback: a metrics line per logged step and per evaluation, and a summary.
    auto lines = read_jsonl(tmp.file("out/metrics.jsonl"));
    int train = 0, eval = 0, summary = 0;
    for (const auto& j : lines) {
        const std::string k = j["kind"];
        train += k == "train";
        eval += k == "eval";
        summary += k == "summary";
    }
    EXPECT_EQ(train, 11);  // step 1 and every 4th step
    EXPECT_EQ(eval, 2);    // at the start and at step 40
    EXPECT_EQ(summary, 1);
    // The checkpoint's weights load as a model.
    auto m = load_model(tmp.file("out/ckpt_000040"));
    EXPECT_EQ(0, std::memcmp(m->params(), tr.model().params(), tr.model().num_params() * 4));
}

TEST(Training, GradientAccumulationScalesEachMicroBatch) {
    // Two micro-batches of B=2 accumulate to the gradient of one batch of B=4 (mean loss).
    Model a(test::tiny_train_model()), b(test::tiny_train_model());
    a.init_weights(5);
    b.init_weights(5);
    const int T = 16;
    auto toks = test::repetitive_tokens(4 * (T + 1), 64, 3);
    std::vector<int32_t> x(4 * T), y(4 * T);
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < T; t++) {
            x[r * T + t] = toks[r * (T + 1) + t];
            y[r * T + t] = toks[r * (T + 1) + t + 1];
        }
    AdamW oa(a.num_params(), {}), ob(b.num_params(), {});
    const StepResult ra = train_step(a, oa, x.data(), y.data(), 4, T, 1, 1e-3, 1.0);
    const StepResult rb = train_step(b, ob, x.data(), y.data(), 2, T, 2, 1e-3, 1.0);
    EXPECT_NEAR(ra.loss, rb.loss, 1e-5);
    EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-4 * ra.grad_norm);
    EXPECT_LT(test::rel_error(a.grads(), b.grads(), a.num_params()), 1e-5);
}

// The per-step losses of an uninterrupted run.
std::vector<float> uninterrupted_losses(const std::string& data, const std::string& out) {
    Trainer tr(test::tiny_setup(data, out), nullptr);
    return tr.run().losses;
}

TEST(Training, ResumeRepeatsTheUninterruptedRunBitForBit) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    const auto full = uninterrupted_losses(tmp.path(), tmp.file("full"));
    ASSERT_EQ(full.size(), 12u);

    {  // "Killed" after step 6: the newest complete checkpoint is step 4.
        Trainer tr(test::tiny_setup(tmp.path(), tmp.file("cut")), nullptr);
        const TrainResult r = tr.run(/*stop_at=*/6);
        ASSERT_EQ(r.losses.size(), 6u);
        for (int i = 0; i < 6; i++) EXPECT_EQ(r.losses[i], full[i]) << "step " << i;
    }
    auto tr = Trainer::resume(tmp.file("cut"), {}, nullptr);
    EXPECT_EQ(tr->state().step, 4);
    const TrainResult r = tr->run();
    ASSERT_EQ(r.losses.size(), 8u);
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(r.losses[i], full[4 + i]) << "step " << 4 + i << " differs after resume";
    // Same final weights as the uninterrupted run.
    auto a = load_model(tmp.file("full/ckpt_000012"));
    auto b = load_model(tmp.file("cut/ckpt_000012"));
    EXPECT_EQ(0, std::memcmp(a->params(), b->params(), a->num_params() * 4));
    // The metrics log holds each step once (lines past the checkpoint were re-logged).
    int step8 = 0;
    for (const auto& j : read_jsonl(tmp.file("cut/metrics.jsonl")))
        step8 += j["kind"] == "train" && j["step"] == 8;
    EXPECT_EQ(step8, 1);
}

TEST(Training, ResumeIsBitwiseWithTwoThreadsToo) {
    // Parallel reductions (GEMMs, the gradient norm) have a fixed order for a fixed thread count.
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("full"));
    s.train.threads = 2;
    s.train.max_iters = 4;
    s.train.eval_interval = 2;
    s.train.eval_iters = 1;
    s.train.eval_at_start = false;
    const auto full = Trainer(s, nullptr).run().losses;
    s.train.out_dir = tmp.file("cut");
    Trainer(s, nullptr).run(/*stop_at=*/3);
    auto tr = Trainer::resume(tmp.file("cut"), {}, nullptr);
    ASSERT_EQ(tr->state().step, 2);
    const auto rest = tr->run().losses;
    ASSERT_EQ(rest.size(), 2u);
    for (int i = 0; i < 2; i++) EXPECT_EQ(rest[i], full[2 + i]) << "step " << 2 + i;
}

TEST(Training, NeverResumesFromAnInterruptedOrDamagedCheckpoint) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    const auto full = uninterrupted_losses(tmp.path(), tmp.file("full"));
    {
        Trainer tr(test::tiny_setup(tmp.path(), tmp.file("cut")), nullptr);
        tr.run(/*stop_at=*/9);  // complete checkpoints at steps 4 and 8
    }
    ASSERT_EQ(list_complete_checkpoints(tmp.file("cut")).size(), 2u);
    // Damage the newest complete checkpoint (truncated weights, as a crash or a full disk
    // leaves them), and add a newer folder that was never marked COMPLETE.
    fs::resize_file(tmp.file("cut/ckpt_000008/model.safetensors"), 1000);
    fs::copy(tmp.file("cut/ckpt_000004"), tmp.file("cut/ckpt_000010"));
    fs::remove(tmp.file("cut/ckpt_000010/COMPLETE"));

    auto tr = Trainer::resume(tmp.file("cut"), {}, nullptr);
    EXPECT_EQ(tr->resumed_from(), tmp.file("cut/ckpt_000004"));
    const TrainResult r = tr->run();
    ASSERT_EQ(r.losses.size(), 8u);
    for (int i = 0; i < 8; i++) EXPECT_EQ(r.losses[i], full[4 + i]) << "step " << 4 + i;

    // Loading the damaged folder directly is a one-line error naming the file.
    test::TempDir t2;
    fs::copy(tmp.file("cut/ckpt_000012"), t2.file("ck"));
    fs::resize_file(t2.file("ck/optimizer.safetensors"), 4096);
    expect_error([&] { Trainer::resume(t2.file("ck"), {}, nullptr); },
                 {"optimizer.safetensors", "truncated"});
    fs::remove(t2.file("ck/COMPLETE"));
    expect_error([&] { Trainer::resume(t2.file("ck"), {}, nullptr); }, {"COMPLETE"});
}

TEST(Training, CorruptedCheckpointFilesAreOneLineErrors) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("out"));
    s.train.max_iters = 4;
    Trainer(s, nullptr).run();
    const std::string ck = tmp.file("out/ckpt_000004");
    Model m(s.model);
    AdamW opt(m.num_params(), {});
    EXPECT_NO_THROW(load_train_checkpoint(ck, m, opt));
    EXPECT_EQ(opt.steps_taken(), 4);

    // One flipped bit in the optimizer moments (size unchanged): the checksum catches it.
    auto moments = read_file_bytes(ck + "/optimizer.safetensors");
    moments[moments.size() - 5] ^= 0x10;
    write_file_atomic(ck + "/optimizer.safetensors", moments.data(), moments.size());
    expect_error([&] { load_train_checkpoint(ck, m, opt); },
                 {ck + "/optimizer.safetensors", "checksum"});
    moments[moments.size() - 5] ^= 0x10;
    write_file_atomic(ck + "/optimizer.safetensors", moments.data(), moments.size());
    EXPECT_NO_THROW(load_train_checkpoint(ck, m, opt));

    // Same size, garbage header.
    auto bytes = read_file_bytes(ck + "/model.safetensors");
    std::memset(bytes.data() + 8, '#', 16);
    write_file_atomic(ck + "/model.safetensors", bytes.data(), bytes.size());
    expect_error([&] { load_train_checkpoint(ck, m, opt); }, {"model.safetensors"});

    // A state.json that is not JSON (size kept equal to the marker's record).
    const std::string state_path = ck + "/state.json";
    std::string text = read_file_text(state_path);
    std::string garbage(text.size(), 'x');
    write_file_atomic(state_path, garbage);
    expect_error([&] { read_train_state(ck); }, {state_path, "not valid JSON"});
}

TEST(Training, KeepLastPrunesOldCheckpointsButKeepsTheBest) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("out"));
    s.train.max_iters = 16;
    s.train.keep_last = 1;
    s.train.learning_rate = 3e-2;  // diverges a little late in the run: the best is not the last
    s.train.min_lr = 3e-2;
    Trainer tr(s, nullptr);
    const TrainResult r = tr.run();
    const auto left = list_complete_checkpoints(tmp.file("out"));
    ASSERT_GE(left.size(), 1u);
    ASSERT_LE(left.size(), 2u);
    EXPECT_EQ(left.back().step, 16);
    bool best_kept = false;
    for (const auto& c : left) best_kept |= c.step == r.best_step;
    EXPECT_TRUE(best_kept) << "best step " << r.best_step;
    auto best = nlohmann::json::parse(read_file_text(tmp.file("out/best.json")));
    EXPECT_EQ(best["step"], r.best_step);
}

TEST(Training, NewRunRefusesAnOutDirWithCheckpoints) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("out"));
    s.train.max_iters = 4;
    Trainer(s, nullptr).run();
    expect_error([&] { Trainer t(s, nullptr); }, {tmp.file("out"), "--resume"});
}

TEST(TrainConfig, WrongTypesAndUnknownKeysAreOneLineErrors) {
    test::TempDir tmp;
    const std::string path = tmp.file("cfg.json");
    auto load = [&](const std::string& text) {
        write_file_atomic(path, text);
        TrainSetup s;
        load_train_config_file(s, path);
        return s;
    };
    expect_error([&] { load(R"({"batch_size": "eight"})"); },
                 {path, "batch_size", "must be an integer"});
    expect_error([&] { load(R"({"batch_size": 2.5})"); }, {path, "batch_size"});
    expect_error([&] { load(R"({"learning_rate": true})"); },
                 {path, "learning_rate", "must be a number"});
    expect_error([&] { load(R"({"decay_lr": 1})"); }, {path, "decay_lr", "true or false"});
    expect_error([&] { load(R"({"data": 5})"); }, {path, "data", "must be a string"});
    expect_error([&] { load(R"({"batch_sise": 8})"); }, {path, "unknown key 'batch_sise'"});
    expect_error([&] { load(R"({"model": {"n_layr": 2}})"); }, {path, "n_layr"});
    expect_error([&] { load(R"({"model": 5})"); }, {path, "model"});
    expect_error([&] { load(R"({"max_iters": 10,)"); }, {path, "not valid JSON"});

    TrainSetup ok = load(R"({"model": "tiny-t6", "batch_size": 2, "max_iters": 7})");
    EXPECT_EQ(ok.train.batch_size, 2);
    EXPECT_EQ(ok.train.max_iters, 7);
    EXPECT_EQ(ok.model.n_layer, 4);
    apply_train_override(ok, "vocab_size=256", true);
    apply_train_override(ok, "learning_rate=1e-3", true);
    apply_train_override(ok, "data=123", true);
    EXPECT_EQ(ok.model.vocab_size, 256);
    EXPECT_DOUBLE_EQ(ok.train.learning_rate, 1e-3);
    EXPECT_EQ(ok.train.data, "123");
    expect_error([&] { apply_train_override(ok, "max_iters=ten", true); },
                 {"max_iters", "must be an integer"});
    expect_error([&] { apply_train_override(ok, "bogus=1", true); }, {"unknown key 'bogus'"});
    expect_error([&] { apply_train_override(ok, "n_layer=3", false); }, {"n_layer", "resum"});
    ok.train.seq_len = 4096;
    expect_error([&] { validate_train_setup(ok, "cfg"); }, {"seq_len", "block_size"});
}

}  // namespace
