#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "core/stop_signal.h"
#include "core/threads.h"
#include "core/timing.h"
#include "kernels/embedding.h"
#include "model/checkpoint.h"
#include "text/data_meta.h"
#include "text/resolve_tokenizer.h"
#include "train/dist.h"
#include "train/imported_optimizer.h"
#include "train/sample.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace t6 {

namespace {

// The tokenizer recorded with the data (meta.json "tokenizer", as `t6 prepare` writes it), for the
// checkpoint's metadata, so generation and evaluation find it without being told.
std::map<std::string, std::string> data_tokenizer_metadata(const std::string& data_dir) {
    if (data_dir.empty()) return {};
    const auto j = read_data_meta(data_dir);  // null without one; fails on a broken one
    if (!j.is_object() || !j.contains("tokenizer")) return {};
    return {{"tokenizer", j["tokenizer"].dump()}};
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;

std::string duration_str(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    long long t = (long long)std::llround(s);
    char buf[48];
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%.1fs", s);
    return buf;
}

// Independent streams for the three samplers, all derived from the run's seed.
uint64_t sampler_seed(long long seed, uint64_t stream) {
    return uint64_t(seed) * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 1;
}

// A loss for a message: "nan" rather than the "-nan" that printf and streams may show.
std::string loss_str(double v) {
    return std::isnan(v) ? std::string("nan") : cat(v);
}

json finite_or_null(double v) {
    return std::isfinite(v) ? json(v) : json(nullptr);
}

// A 64-bit hash of the parameters' bits, to check that every rank holds the same weights.
uint64_t params_hash(const float* p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        std::memcpy(&b, p + i, 4);
        h = (h ^ b) * 0x100000001b3ull;
    }
    return h;
}

// Clears the model's gradient hook when train_step leaves (also by an exception).
struct HookReset {
    Model& m;
    ~HookReset() {
        m.set_grad_ready_hook(nullptr);
        m.set_defer_embedding_backward(false);
    }
};

}  // namespace

StepResult train_step(Model& model, AdamW& opt, const int32_t* x, const int32_t* y, int B, int T,
                      int accum, double lr, double grad_clip, DataParallel* dp) {
    const int ranks = dp ? dp->ranks : 1;
    StepResult r;
    model.zero_grad();
    const size_t bt = size_t(B) * T, n = model.num_params();
    // Official: loss = loss / gradient_accumulation_steps before backward, i.e. every
    // micro-batch's gradient is scaled by 1/accum and summed. Over several ranks also by
    // 1/ranks, so that the sum all-reduce yields the mean over the global batch.
    const float scale = 1.0f / float(accum * ranks);
    const bool overlap = ranks > 1 && dp->overlap;
    dist::BucketReducer reducer;
    HookReset reset{model};
    double sum = 0;
    for (int k = 0; k < accum; k++) {
        // Only the last micro-batch's backward makes gradients final. Its embedding backward is
        // left out, so the tied embedding's bucket (final after the lm_head) reduces first.
        if (overlap && k == accum - 1) {
            model.set_defer_embedding_backward(true);
            model.set_grad_ready_hook([&](size_t offset, size_t count) {
                reducer.start(model.grads() + offset, count);
                reducer.poke();
            });
        }
        sum += model.forward_backward(x + k * bt, y + k * bt, B, T, scale);
    }
    model.set_grad_ready_hook(nullptr);
    if (ranks > 1) {
        if (overlap) {
            // The embedding backward of every rank's rows, added on every rank in rank order
            // (the order one process with the global batch adds them in), after the all-reduce.
            const int C = model.config().n_embd;
            dp->emb_tokens.resize(bt * size_t(ranks));
            dp->emb_grad.resize(bt * size_t(C) * size_t(ranks));
            reducer.gather(x + (accum - 1) * bt, dp->emb_tokens.data(), bt * sizeof(int32_t));
            reducer.gather(model.embedding_output_grad(), dp->emb_grad.data(),
                           bt * size_t(C) * sizeof(float));
            dp->backward_mpi_s = reducer.call_seconds();
            dp->wait_s = reducer.finish();
            model.set_defer_embedding_backward(false);
            float* dwte = model.grads() + model.layout().specs[0].offset;
            for (int q = 0; q < ranks; q++)
                embedding_backward(dwte, dp->emb_grad.data() + size_t(q) * bt * size_t(C),
                                   dp->emb_tokens.data() + size_t(q) * bt, int(bt), C,
                                   model.config().vocab_size);
        } else {
            const auto t0 = Clock::now();
            dist::allreduce_sum(model.grads(), n, "the gradient all-reduce");
            dp->backward_mpi_s = 0;
            dp->wait_s = seconds_since(t0);
        }
        dist::allreduce_sum(&sum, 1, "the loss all-reduce");
        sum /= ranks;
    }
    r.loss = float(sum / accum);
    // The averaged gradient is the same on every rank, hence its norm and the clip coefficient.
    r.grad_norm = grad_global_norm(model.grads(), n);
    r.clip_coef = clip_coefficient(r.grad_norm, float(grad_clip));
    if (ranks > 1 && dp->zero1) {
        const size_t lo = dp->shard[size_t(dp->rank)], hi = dp->shard[size_t(dp->rank) + 1];
        T6_CHECK(opt.size() == hi - lo, "ZeRO-1 optimizer shard size");
        opt.step(model.params() + lo, model.grads() + lo, lr, r.clip_coef);
        const auto t0 = Clock::now();
        dist::allgather_parts(model.params(), dp->shard, "the ZeRO-1 parameter all-gather");
        dp->gather_s = seconds_since(t0);
    } else {
        opt.step(model.params(), model.grads(), lr, r.clip_coef);
    }
    return r;
}

void Trainer::setup_parallel(FILE* log) {
    dp_.ranks = dist::size();
    dp_.rank = dist::rank();
    log_ = dp_.rank == 0 ? log : nullptr;  // only rank 0 logs
    const TrainConfig& c = state_.config;
    dist::set_timeout(c.dist_timeout);
    dp_.overlap = c.dist_overlap;
    dp_.zero1 = c.zero1;
    if (dp_.ranks <= 1) return;
    // Every rank must start at the same step (on --resume each reads the checkpoint itself).
    uint64_t lo = 0, hi = 0;
    dist::allreduce_minmax(uint64_t(state_.step), lo, hi, "the start step check");
    if (lo != hi)
        fail("the ranks start at different steps (", lo, " to ", hi,
             "): every rank must see the same out_dir and checkpoints");
    // Every rank starts from rank 0's weights (they are equal already when all ranks read the
    // same checkpoint or seed; this makes it certain).
    dist::broadcast(model_->params(), model_->num_params(), 0, "the initial weight broadcast");
    if (sharded()) {
        // Keep only this rank's part of the moments.
        dp_.shard = dist::split_evenly(model_->num_params(), dp_.ranks);
        const size_t lo = dp_.shard[size_t(dp_.rank)], hi = dp_.shard[size_t(dp_.rank) + 1];
        auto part = std::make_unique<AdamW>(hi - lo, opt_->config());
        std::copy(opt_->exp_avg() + lo, opt_->exp_avg() + hi, part->exp_avg());
        std::copy(opt_->exp_avg_sq() + lo, opt_->exp_avg_sq() + hi, part->exp_avg_sq());
        part->set_steps_taken(opt_->steps_taken());
        opt_ = std::move(part);
    }
}

void Trainer::next_slice(BatchSampler& s, int32_t* x, int32_t* y) {
    const size_t bt = size_t(state_.config.batch_size) * state_.config.seq_len;
    if (dp_.ranks <= 1) {
        s.next(x, y);
        return;
    }
    // One sampler draws the global micro-batch for all ranks (the same stream as one process
    // with batch_size x ranks); rank r takes rows [r*B, (r+1)*B).
    gx_.resize(bt * size_t(dp_.ranks));
    gy_.resize(gx_.size());
    s.next(gx_.data(), gy_.data());
    std::copy_n(gx_.data() + bt * size_t(dp_.rank), bt, x);
    std::copy_n(gy_.data() + bt * size_t(dp_.rank), bt, y);
}

void Trainer::logf(const char* fmt, ...) {
    if (!log_) return;
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(log_, fmt, ap);
    va_end(ap);
    std::fflush(log_);
}

void Trainer::warnf(const char* fmt, ...) {
    if (dist::rank() != 0) return;
    if (log_) std::fflush(log_);  // keep the order of the two streams on a terminal
    std::fputs("t6 train: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fflush(stderr);
}

int Trainer::agreed_stop_signal() {
    int sig = stop_signal();
    if (dp_.ranks > 1) {
        // mpirun forwards the signal to every rank, not necessarily within the same step: all
        // ranks stop after the first step in which any of them saw it.
        uint64_t lo = 0, hi = 0;
        dist::allreduce_minmax(uint64_t(sig), lo, hi, "the stop-signal check");
        sig = int(hi);
    }
    return sig;
}

Trainer::Trainer(const TrainSetup& setup, FILE* log) : log_(log) {
    validate_train_setup(setup, "t6 train");
    const TrainConfig& c = setup.train;
    if (c.threads > 0) set_num_threads(c.threads);
    const auto existing = list_complete_checkpoints(c.out_dir);
    if (!existing.empty() && dist::rank() == 0)
        fail(c.out_dir, ": already holds checkpoints (latest step ", existing.back().step,
             "); continue it with t6 train --resume ", c.out_dir, ", or choose another out_dir");
    state_.config = c;
    state_.model = setup.model;
    state_.threads = num_threads();
    model_ = std::make_unique<Model>(setup.model);
    model_->set_matmul_precision(parse_matmul_precision(c.matmul_precision, "matmul_precision"));
    if (c.init_from == "scratch")
        model_->init_weights(uint64_t(c.seed));
    else
        load_weights(*model_, checkpoint_weights_path(c.init_from));
    opt_ = std::make_unique<AdamW>(model_->num_params(), c.adamw());
    if (c.init_from != "scratch") {  // an official run imported with its optimizer.pt continues
        const std::string note =
            load_imported_optimizer(checkpoint_weights_path(c.init_from), *model_, *opt_, state_);
        if (!note.empty()) logf("%s\n", note.c_str());
    }
    setup_parallel(log);
    open_data();
    if (dp_.rank != 0) return;  // only rank 0 writes
    // From here on this run owns out_dir: a second one fails at once (and checks again for
    // checkpoints, which a run that held the lock until now may have written).
    lock_ = std::make_unique<RunLock>(c.out_dir);
    const auto now = list_complete_checkpoints(c.out_dir);
    if (!now.empty())
        fail(c.out_dir, ": already holds checkpoints (latest step ", now.back().step,
             "); continue it with t6 train --resume ", c.out_dir, ", or choose another out_dir");
    if (const int n = remove_temporary_checkpoints(c.out_dir))
        warnf("removed %d unfinished checkpoint folder%s left in %s by an earlier run\n", n,
              n == 1 ? "" : "s", c.out_dir.c_str());
    write_file_atomic((fs::path(c.out_dir) / "metrics.jsonl").string(), std::string());
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& dir,
                                         const std::vector<std::string>& overrides, FILE* log) {
    std::unique_ptr<Trainer> tr(new Trainer());
    tr->log_ = dist::rank() == 0 ? log : nullptr;
    if (!fs::is_directory(dir)) fail(dir, ": no such folder to resume from");
    std::vector<std::string> candidates;
    std::string out_dir;
    const bool single = is_checkpoint_dir(dir);
    if (single) {
        candidates.push_back(dir);
        out_dir = fs::absolute(dir).parent_path().string();
        if (dist::rank() == 0) tr->lock_ = std::make_unique<RunLock>(out_dir);
    } else {
        for (const auto& e : list_complete_checkpoints(dir))
            candidates.insert(candidates.begin(), e.path);
        out_dir = dir;
        // One run at a time in out_dir (two resumes of it would write the same checkpoints).
        if (dist::rank() == 0) tr->lock_ = std::make_unique<RunLock>(out_dir);
        if (candidates.empty())
            fail(dir,
                 ": no complete checkpoint to resume from (folders ckpt_<step>/ with a "
                 "COMPLETE marker)");
    }
    for (const auto& cand : candidates) {
        try {
            TrainState st = read_train_state(cand);
            auto model = std::make_unique<Model>(st.model);
            auto opt = std::make_unique<AdamW>(model->num_params(), st.config.adamw());
            load_train_checkpoint(cand, *model, *opt);
            tr->state_ = std::move(st);
            tr->model_ = std::move(model);
            tr->opt_ = std::move(opt);
            tr->resumed_from_ = cand;
            break;
        } catch (const Error& e) {
            if (single) throw;
            tr->warnf("warning: skipping checkpoint %s: %s\n", cand.c_str(), e.what());
        }
    }
    if (!tr->model_) fail(dir, ": no checkpoint in it could be loaded (see the warnings above)");

    TrainSetup setup;
    setup.train = tr->state_.config;
    setup.model = tr->state_.model;
    for (const auto& o : overrides) apply_train_override(setup, o, /*allow_model_keys=*/false);
    setup.train.out_dir = out_dir;
    validate_train_setup(setup, "t6 train --resume");
    // The optimizer hyper-parameters may change on resume (as in the official code, where the
    // config is re-read); the moments carry over.
    const AdamWConfig a = setup.train.adamw();
    const AdamWConfig& b = tr->opt_->config();
    if (a.beta1 != b.beta1 || a.beta2 != b.beta2 || a.eps != b.eps ||
        a.weight_decay != b.weight_decay) {
        auto opt = std::make_unique<AdamW>(tr->model_->num_params(), a);
        std::copy(tr->opt_->exp_avg(), tr->opt_->exp_avg() + opt->size(), opt->exp_avg());
        std::copy(tr->opt_->exp_avg_sq(), tr->opt_->exp_avg_sq() + opt->size(), opt->exp_avg_sq());
        opt->set_steps_taken(tr->opt_->steps_taken());
        tr->opt_ = std::move(opt);
    }
    tr->state_.config = setup.train;
    tr->model_->set_matmul_precision(
        parse_matmul_precision(setup.train.matmul_precision, "matmul_precision"));
    if (setup.train.threads > 0) set_num_threads(setup.train.threads);
    if (tr->state_.threads != num_threads())
        tr->warnf(
            "warning: the run used %d threads, this one %d: losses will not repeat the "
            "uninterrupted run's bit for bit (set threads=%d)\n",
            tr->state_.threads, num_threads(), tr->state_.threads);
    tr->state_.threads = num_threads();
    if (tr->state_.ranks != dist::size())
        tr->logf(
            "the run used %d rank%s, this one %d: the data stream continues with a global "
            "micro-batch of %d x %d sequences\n",
            tr->state_.ranks, tr->state_.ranks == 1 ? "" : "s", dist::size(), dist::size(),
            setup.train.batch_size);
    tr->setup_parallel(log);
    tr->open_data();
    const std::string where = tr->resumed_from_ + "/state.json";
    tr->train_->set_state(tr->state_.train_sampler, where);
    tr->eval_train_->set_state(tr->state_.eval_train_sampler, where);
    tr->eval_val_->set_state(tr->state_.eval_val_sampler, where);
    if (tr->dp_.rank == 0) {
        tr->trim_metrics(tr->state_.step);
        if (const int n = remove_temporary_checkpoints(out_dir))
            tr->warnf("removed %d unfinished checkpoint folder%s left in %s by an earlier run\n", n,
                      n == 1 ? "" : "s", out_dir.c_str());
    }
    tr->saved_step_ = tr->state_.step;
    tr->logf("resuming from %s (step %lld)\n", tr->resumed_from_.c_str(), tr->state_.step);
    return tr;
}

void Trainer::open_data() {
    const TrainConfig& c = state_.config;
    const TokenFormat fmt = parse_token_format(c.data_format, "data_format");
    const DataFiles files = find_data_files(c.data);
    const int V = state_.model.vocab_size;
    const size_t min_tokens = size_t(c.seq_len) + 1;
    auto train = open_token_split(files.train, fmt, V, min_tokens, files.raw_width);
    auto val = open_token_split(files.val, fmt, V, min_tokens, files.raw_width);
    // The samplers draw global micro-batches (ranks x batch_size); each rank takes its rows.
    const int GB = c.batch_size * dp_.ranks;
    train_ = std::make_unique<BatchSampler>(train, GB, c.seq_len, sampler_seed(c.seed, 1));
    eval_train_ = std::make_unique<BatchSampler>(train, GB, c.seq_len, sampler_seed(c.seed, 2));
    eval_val_ = std::make_unique<BatchSampler>(val, GB, c.seq_len, sampler_seed(c.seed, 3));
}

void Trainer::evaluate(double& train_loss, double& val_loss) {
    // Official estimate_loss(): for each split, the mean loss of eval_iters fresh random batches.
    const TrainConfig& c = state_.config;
    const size_t bt = size_t(c.batch_size) * c.seq_len;
    std::vector<int32_t> x(bt), y(bt);
    auto mean_loss = [&](BatchSampler& s) {
        double sum = 0;
        for (int i = 0; i < c.eval_iters; i++) {
            next_slice(s, x.data(), y.data());
            sum += model_->forward(x.data(), y.data(), c.batch_size, c.seq_len);
        }
        dist::allreduce_sum(&sum, 1, "the evaluation loss all-reduce");
        return sum / (double(c.eval_iters) * dp_.ranks);
    };
    train_loss = mean_loss(*eval_train_);
    val_loss = mean_loss(*eval_val_);
}

void Trainer::write_metrics(const std::string& line) {
    if (dp_.rank != 0) return;
    const std::string path = (fs::path(state_.config.out_dir) / "metrics.jsonl").string();
    FILE* f = std::fopen(path.c_str(), "a");
    if (!f) fail(path, ": cannot open for appending");
    std::fputs(line.c_str(), f);
    std::fputc('\n', f);
    std::fclose(f);
}

void Trainer::trim_metrics(long long max_step) {
    // Lines logged after the checkpoint by the interrupted run are dropped: they are logged again.
    const std::string path = (fs::path(state_.config.out_dir) / "metrics.jsonl").string();
    if (!file_exists(path)) return;
    std::istringstream in(read_file_text(path));
    std::string line, kept;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded() || !j.contains("step") || !j["step"].is_number_integer()) continue;
        if (j["step"].get<long long>() <= max_step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
}

void Trainer::save_checkpoint(TrainResult& res, bool best) {
    TrainState& st = state_;
    const TrainConfig& c = st.config;
    saved_step_ = st.step;  // on every rank (the stop check compares it on all of them)
    st.ranks = dp_.ranks;
    st.train_sampler = train_->state();
    st.eval_train_sampler = eval_train_->state();
    st.eval_val_sampler = eval_val_->state();
    if (dp_.ranks > 1) {
        // Every rank must hold the same weights; a difference would be a bug (or a
        // non-deterministic all-reduce), caught here before it is saved.
        uint64_t lo = 0, hi = 0;
        dist::allreduce_minmax(params_hash(model_->params(), model_->num_params()), lo, hi,
                               "the weight check");
        if (lo != hi) fail("step ", st.step, ": the ranks' weights differ (stopping the job)");
    }
    std::unique_ptr<AdamW> full;  // ZeRO-1: the whole moments, gathered on rank 0
    if (sharded()) {
        if (dp_.rank == 0) full = std::make_unique<AdamW>(model_->num_params(), opt_->config());
        dist::gather_parts(opt_->exp_avg(), full ? full->exp_avg() : nullptr, dp_.shard, 0,
                           "the ZeRO-1 moment gather");
        dist::gather_parts(opt_->exp_avg_sq(), full ? full->exp_avg_sq() : nullptr, dp_.shard, 0,
                           "the ZeRO-1 moment gather");
        if (full) full->set_steps_taken(opt_->steps_taken());
    }
    if (dp_.rank != 0) return;  // only rank 0 writes checkpoints
    res.last_checkpoint = save_train_checkpoint(c.out_dir, *model_, full ? *full : *opt_, st,
                                                data_tokenizer_metadata(c.data));
    if (best) {
        json b = {{"step", st.step},
                  {"val_loss", st.last_val_loss},
                  {"checkpoint", checkpoint_dir_name(st.step)}};
        write_file_atomic((fs::path(c.out_dir) / "best.json").string(), b.dump() + "\n");
    }
    prune_checkpoints(c.out_dir, c.keep_last, st.best_step);
    logf("checkpoint %s\n", res.last_checkpoint.c_str());
}

TrainResult Trainer::run(long long stop_at) {
    TrainState& st = state_;
    const TrainConfig& c = st.config;
    const LrSchedule sched = c.schedule();
    const int B = c.batch_size, T = c.seq_len, accum = c.gradient_accumulation_steps;
    const size_t bt = size_t(B) * T;
    const long long tokens_per_step = (long long)bt * accum * dp_.ranks;
    std::vector<int32_t> x(bt * accum), y(bt * accum);

    if (!c.distill_from.empty() && !teacher_) {
        teacher_ = std::make_unique<DistillTeacher>(c.distill_from, *model_, c.distill_weight,
                                                    c.distill_temperature, c.distill_schedule);
        logf("distilling from %s (weight %g, temperature %g, %s schedule)\n",
             c.distill_from.c_str(), c.distill_weight, c.distill_temperature,
             c.distill_schedule.c_str());
    }
    TrainResult res;
    res.start_step = st.step;
    const auto run_t0 = Clock::now();
    auto last_mark = Clock::now();  // for elapsed_s bookkeeping
    auto account = [&]() {
        st.elapsed_s += seconds_since(last_mark);
        last_mark = Clock::now();
    };

    if (st.step == 0 && st.step < c.max_iters)
        logf(
            "training %s: %zu parameters, %lld steps of %d x %d x %d tokens, data %s (%zu "
            "train / %zu val tokens), matmul precision %s, out_dir %s\n",
            st.model.describe().c_str(), model_->num_params(), (long long)c.max_iters, accum, B, T,
            c.data.c_str(), train_->total_tokens(), eval_val_->total_tokens(),
            c.matmul_precision.c_str(), c.out_dir.c_str());
    if (st.step < c.max_iters)
        logf(
            "global batch: %d rank%s x %d sequences x %d accumulation steps = %lld sequences of "
            "%d tokens per step%s\n",
            dp_.ranks, dp_.ranks == 1 ? "" : "s", B, accum, (long long)dp_.ranks * B * accum, T,
            dp_.ranks == 1 ? ""
            : sharded()    ? " (gradient all-reduce; ZeRO-1: AdamW sharded over the ranks)"
                           : " (gradient all-reduce)");

    auto do_eval = [&](bool checkpoint) {
        double tl = 0, vl = 0;
        evaluate(tl, vl);
        if (!std::isfinite(tl) || !std::isfinite(vl)) {
            // A diverged run: its weights must not become a checkpoint that every --resume
            // would load and fail on again.
            logf("eval step %lld: train loss %.4f, val loss %.4f\n", st.step, tl, vl);
            fail("step ", st.step, ": the evaluation loss is not finite (train ", loss_str(tl),
                 ", val ", loss_str(vl), "): the run diverged; no checkpoint written",
                 res.last_checkpoint.empty() && resumed_from_.empty()
                     ? std::string()
                     : cat(" (the last good one: ",
                           res.last_checkpoint.empty() ? resumed_from_ : res.last_checkpoint, ")"),
                 "; lower learning_rate or check the data");
        }
        st.last_train_loss = tl;
        st.last_val_loss = vl;
        bool best = false;
        if (checkpoint && vl < st.best_val_loss) {
            st.best_val_loss = vl;
            st.best_step = st.step;
            best = true;
        }
        logf("eval step %lld: train loss %.4f, val loss %.4f%s\n", st.step, tl, vl,
             best ? " (best)" : "");
        account();
        write_metrics(json({{"kind", "eval"},
                            {"step", st.step},
                            {"train_loss", tl},
                            {"val_loss", vl},
                            {"best_val_loss", finite_or_null(st.best_val_loss)},
                            {"elapsed_s", st.elapsed_s}})
                          .dump());
        if (!checkpoint) return;
        save_checkpoint(res, best);
    };

    if (st.step == 0 && c.eval_at_start && c.max_iters > 0 && stop_at != 0) do_eval(false);

    double train_s = 0, interval_train_s = 0;
    long long interval_tokens = 0, steps_here = 0;
    while (st.step < c.max_iters) {
        if (stop_at >= 0 && st.step >= stop_at) {
            res.end_step = st.step;
            res.wall_s = seconds_since(run_t0);
            return res;  // as if killed: no final evaluation or checkpoint
        }
        const double lr = sched.at(st.step);
        for (int k = 0; k < accum; k++) next_slice(*train_, x.data() + k * bt, y.data() + k * bt);
        if (teacher_) teacher_->attach(*model_, st.step, c.max_iters);
        const auto t0 = Clock::now();
        const StepResult r = train_step(*model_, *opt_, x.data(), y.data(), B, T, accum, lr,
                                        c.grad_clip, dp_.ranks > 1 ? &dp_ : nullptr);
        const double dt = seconds_since(t0);
        train_s += dt;
        interval_train_s += dt;
        st.step++;
        steps_here++;
        st.tokens += tokens_per_step;
        res.tokens += tokens_per_step;
        interval_tokens += tokens_per_step;
        res.losses.push_back(r.loss);
        res.grad_norms.push_back(r.grad_norm);
        if (!std::isfinite(r.loss))
            fail("step ", st.step, ": the loss is ", loss_str(r.loss),
                 " (diverged; lower learning_rate or check the data)");

        if (st.step % c.log_interval == 0 || st.step == 1 || st.step == c.max_iters) {
            const double tps = interval_tokens / std::max(interval_train_s, 1e-9);
            const double eta = double(c.max_iters - st.step) * train_s / double(steps_here);
            logf("step %lld/%lld | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | ETA %s\n",
                 st.step, (long long)c.max_iters, r.loss, lr, r.grad_norm, tps,
                 duration_str(eta).c_str());
            account();
            json m = {{"kind", "train"},          {"step", st.step},
                      {"loss", r.loss},           {"lr", lr},
                      {"grad_norm", r.grad_norm}, {"clip_coef", r.clip_coef},
                      {"tokens", st.tokens},      {"tokens_per_s", tps},
                      {"elapsed_s", st.elapsed_s}};
            if (teacher_) m["distill_kl"] = teacher_->last_kl();  // loss = CE + w T^2 KL
            if (dp_.ranks > 1) {  // this step's all-reduce, as rank 0 saw it
                m["ranks"] = dp_.ranks;
                m["allreduce_wait_s"] = dp_.wait_s;
                m["allreduce_in_backward_s"] = dp_.backward_mpi_s;
            }
            write_metrics(m.dump());
            interval_tokens = 0;
            interval_train_s = 0;
        }
        if (st.step % c.eval_interval == 0 || st.step == c.max_iters) do_eval(true);
        if (st.step >= c.max_iters) break;  // done: a signal now changes nothing
        if (const int sig = agreed_stop_signal()) {
            // Graceful stop: this step is done; save it (unless the evaluation just did) without
            // an evaluation, so that the stop stays quick.
            account();
            if (saved_step_ != st.step) save_checkpoint(res, false);
            res.stopped_by = sig;
            res.end_step = st.step;
            res.wall_s = seconds_since(run_t0);
            warnf(
                "stopped by %s after step %lld; checkpoint %s (continue with t6 train --resume "
                "%s)\n",
                sig == SIGINT    ? "SIGINT"
                : sig == SIGTERM ? "SIGTERM"
                                 : "a signal",
                st.step, (fs::path(c.out_dir) / checkpoint_dir_name(saved_step_)).string().c_str(),
                c.out_dir.c_str());
            return res;
        }
    }
    account();
    res.end_step = st.step;
    res.wall_s = seconds_since(run_t0);
    res.best_val_loss = st.best_val_loss;
    res.best_step = st.best_step;
    res.final_val_loss = st.last_val_loss;
    res.final_train_loss = st.last_train_loss;

    const long long steps_run = res.end_step - res.start_step;
    logf(
        "done: %lld steps (%lld this run), %lld tokens, %s (%.0f tok/s training); best val "
        "loss %.4f (step %lld), final val loss %.4f\n",
        st.step, steps_run, st.tokens, duration_str(res.wall_s).c_str(),
        train_s > 0 ? double(res.tokens) / train_s : 0.0, st.best_val_loss, st.best_step,
        st.last_val_loss);
    write_metrics(json({{"kind", "summary"},
                        {"step", st.step},
                        {"tokens", st.tokens},
                        {"wall_s", res.wall_s},
                        {"elapsed_s", st.elapsed_s},
                        {"best_val_loss", finite_or_null(st.best_val_loss)},
                        {"best_step", st.best_step},
                        {"final_val_loss", finite_or_null(st.last_val_loss)},
                        {"ranks", dp_.ranks}})
                      .dump());
    if (c.sample_tokens > 0 && dp_.rank == 0) {
        // In the data's own tokenizer (meta.json; a vocabulary of 256 without one: bytes). A
        // tokenizer that cannot be resolved skips the sample, not the finished run.
        std::unique_ptr<Tokenizer> tok;
        try {
            TokenizerSources src;
            src.data_dir = c.data;
            src.vocab_size = model_->config().vocab_size;
            tok = resolve_tokenizer(src);
        } catch (const std::exception& e) {
            logf("sample skipped: %s\n", e.what());
        }
        if (tok) {
            const GreedySample s =
                greedy_sample(*model_, *tok, c.sample_prompt, c.sample_tokens, c.seq_len);
            res.sample = s.text;
            logf("sample (greedy, %d tokens, tokenizer %s):\n%s%s\n", s.tokens, tok->kind().c_str(),
                 printable_text(s.prompt_text).c_str(), printable_text(s.text).c_str());
        }
    }
    return res;
}

}  // namespace t6
