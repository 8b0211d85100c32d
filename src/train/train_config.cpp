#include "train/train_config.h"

#include <nlohmann/json.hpp>
#include <variant>

#include "core/error.h"
#include "core/file_util.h"
#include "kernels/gemm.h"
#include "model/checkpoint.h"
#include "train/token_data.h"

using json = nlohmann::json;

namespace t6 {

namespace {

using Member = std::variant<int TrainConfig::*, long long TrainConfig::*, double TrainConfig::*,
                            bool TrainConfig::*, std::string TrainConfig::*>;

struct KeySpec {
    const char* name;
    Member member;
    const char* help;
};

const std::vector<KeySpec>& keys() {
    static const std::vector<KeySpec> k = {
        {"data", &TrainConfig::data, "folder with train.bin/val.bin or *train*/*val* shards"},
        {"data_format", &TrainConfig::data_format, "auto | nanogpt | llmc"},
        {"out_dir", &TrainConfig::out_dir, "checkpoints and metrics.jsonl go here"},
        {"init_from", &TrainConfig::init_from, "scratch, or a checkpoint to take weights from"},
        {"batch_size", &TrainConfig::batch_size, "sequences per micro-batch"},
        {"seq_len", &TrainConfig::seq_len, "tokens per sequence (<= model block_size)"},
        {"gradient_accumulation_steps", &TrainConfig::gradient_accumulation_steps,
         "micro-batches per optimizer step"},
        {"max_iters", &TrainConfig::max_iters, "optimizer steps"},
        {"learning_rate", &TrainConfig::learning_rate, "peak learning rate"},
        {"min_lr", &TrainConfig::min_lr, "final learning rate of the cosine decay"},
        {"warmup_iters", &TrainConfig::warmup_iters, "linear warm-up steps"},
        {"lr_decay_iters", &TrainConfig::lr_decay_iters, "end of the cosine decay (0: max_iters)"},
        {"decay_lr", &TrainConfig::decay_lr, "false: constant learning_rate"},
        {"weight_decay", &TrainConfig::weight_decay, "AdamW decoupled weight decay (all params)"},
        {"beta1", &TrainConfig::beta1, "AdamW beta1"},
        {"beta2", &TrainConfig::beta2, "AdamW beta2"},
        {"adam_eps", &TrainConfig::adam_eps, "AdamW epsilon"},
        {"grad_clip", &TrainConfig::grad_clip, "clip the global gradient norm to this (0: off)"},
        {"eval_interval", &TrainConfig::eval_interval, "steps between evaluations/checkpoints"},
        {"eval_iters", &TrainConfig::eval_iters, "batches per split in an evaluation"},
        {"eval_at_start", &TrainConfig::eval_at_start, "evaluate before the first step"},
        {"log_interval", &TrainConfig::log_interval, "steps between progress lines"},
        {"keep_last", &TrainConfig::keep_last, "complete checkpoints to keep (plus the best)"},
        {"seed", &TrainConfig::seed, "seed of the weights and the data order"},
        {"threads", &TrainConfig::threads, "threads (0: all cores); fixed for exact resume"},
        {"matmul_precision", &TrainConfig::matmul_precision,
         "f32 (reference) | bf16: GEMM inputs rounded to bf16, f32 accumulation, f32 weights"},
        {"zero1", &TrainConfig::zero1,
         "data-parallel: shard AdamW's moments and update over the ranks (ZeRO-1)"},
        {"dist_overlap", &TrainConfig::dist_overlap,
         "data-parallel: all-reduce gradient buckets while backward still runs"},
        {"dist_timeout", &TrainConfig::dist_timeout,
         "data-parallel: seconds to wait for the other ranks before stopping the job"},
        {"sample_tokens", &TrainConfig::sample_tokens,
         "after training, greedily sample this many tokens (in the data's tokenizer)"},
        {"sample_prompt", &TrainConfig::sample_prompt, "the sample's prompt text"},
        {"distill_from", &TrainConfig::distill_from,
         "teacher checkpoint: add w T^2 KL(teacher || student) to the loss (\"\": off)"},
        {"distill_weight", &TrainConfig::distill_weight, "distillation weight w"},
        {"distill_temperature", &TrainConfig::distill_temperature, "distillation temperature T"},
        {"distill_schedule", &TrainConfig::distill_schedule,
         "constant | linear (w decays linearly to 0 at max_iters)"},
    };
    return k;
}

const KeySpec* find_key(const std::string& name) {
    for (const auto& k : keys())
        if (name == k.name) return &k;
    return nullptr;
}

const char* type_name(const Member& m) {
    if (std::holds_alternative<int TrainConfig::*>(m)) return "an integer";
    if (std::holds_alternative<long long TrainConfig::*>(m)) return "an integer";
    if (std::holds_alternative<double TrainConfig::*>(m)) return "a number";
    if (std::holds_alternative<bool TrainConfig::*>(m)) return "true or false";
    return "a string";
}

}  // namespace

bool set_train_key(TrainConfig& c, const std::string& key, const json& v,
                   const std::string& where) {
    const KeySpec* k = find_key(key);
    if (!k) return false;
    auto wrong = [&]() {
        fail(where, ": key '", key, "' must be ", type_name(k->member), ", not ", v.dump());
    };
    std::visit(
        [&](auto member) {
            using T = std::remove_reference_t<decltype(c.*member)>;
            if constexpr (std::is_same_v<T, bool>) {
                if (!v.is_boolean()) wrong();
                c.*member = v.get<bool>();
            } else if constexpr (std::is_same_v<T, std::string>) {
                if (!v.is_string()) wrong();
                c.*member = v.get<std::string>();
            } else if constexpr (std::is_same_v<T, double>) {
                if (!v.is_number()) wrong();
                c.*member = v.get<double>();
            } else {
                if (!v.is_number_integer()) wrong();
                const long long x = v.get<long long>();
                if (x < (long long)std::numeric_limits<T>::min() ||
                    x > (long long)std::numeric_limits<T>::max())
                    fail(where, ": key '", key, "' value ", x, " is out of range");
                c.*member = T(x);
            }
        },
        k->member);
    return true;
}

json TrainConfig::to_json() const {
    json j = json::object();
    for (const auto& k : keys())
        std::visit([&](auto member) { j[k.name] = this->*member; }, k.member);
    return j;
}

TrainConfig train_config_from_json(const json& j, const std::string& where) {
    if (!j.is_object()) fail(where, ": train config must be a JSON object");
    TrainConfig c;
    for (auto& [key, v] : j.items())
        if (!set_train_key(c, key, v, where)) fail(where, ": unknown training key '", key, "'");
    return c;
}

std::string train_keys_help() {
    const TrainConfig d;
    const json dj = d.to_json();
    std::string s;
    for (const auto& k : keys()) {
        std::string left = std::string("  ") + k.name + " = " + dj[k.name].dump();
        left.resize(std::max<size_t>(left.size() + 2, 38), ' ');
        s += left + k.help + "\n";
    }
    return s;
}

LrSchedule TrainConfig::schedule() const {
    LrSchedule s;
    s.learning_rate = learning_rate;
    s.min_lr = min_lr;
    s.warmup_iters = warmup_iters;
    s.lr_decay_iters = lr_decay_iters > 0 ? lr_decay_iters : max_iters;
    s.decay_lr = decay_lr;
    return s;
}

AdamWConfig TrainConfig::adamw() const {
    AdamWConfig a;
    a.beta1 = beta1;
    a.beta2 = beta2;
    a.eps = adam_eps;
    a.weight_decay = weight_decay;
    return a;
}

void apply_train_config_json(TrainSetup& s, const json& j, const std::string& where) {
    if (!j.is_object()) fail(where, ": a training config must be a JSON object");
    for (auto& [key, v] : j.items()) {
        if (key == "model") {
            if (v.is_string()) {
                s.model_source = v.get<std::string>();
                s.model = resolve_model_config(s.model_source);
            } else if (v.is_object()) {
                s.model_source = where + " (model)";
                s.model = config_from_json(v, where + ": model");
            } else {
                fail(where, ": key 'model' must be a preset name, a path or a JSON object, not ",
                     v.dump());
            }
            s.model_given = true;
        } else if (!set_train_key(s.train, key, v, where)) {
            fail(where, ": unknown key '", key,
                 "' (training keys: t6 train --help; model keys "
                 "go inside \"model\")");
        }
    }
}

void load_train_config_file(TrainSetup& s, const std::string& path) {
    const std::string text = read_file_text(path);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        fail(path, ": not valid JSON (byte ", e.byte, ")");
    } catch (const json::exception&) {
        // e.g. a number such as 1e400 that no double holds
        fail(path, ": a number in it is out of range (no double holds it)");
    }
    apply_train_config_json(s, j, path);
}

void apply_train_override(TrainSetup& s, const std::string& assignment, bool allow_model_keys) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) fail("argument '", assignment, "': expected key=value");
    const std::string key = assignment.substr(0, eq), val = assignment.substr(eq + 1);
    const std::string where = cat("override '", assignment, "'");
    if (const KeySpec* k = find_key(key)) {
        json v;
        if (std::holds_alternative<std::string TrainConfig::*>(k->member)) {
            v = val;  // strings are taken verbatim (a folder may be named 123)
        } else {
            try {
                v = json::parse(val);
            } catch (const json::parse_error&) {
                v = val;  // reported as a wrong type below
            } catch (const json::exception&) {
                fail(where, ": key '", key, "': ", val, " is out of range");
            }
        }
        set_train_key(s.train, key, v, where);
        return;
    }
    // Not a training key: a model key, if allowed.
    ModelConfig trial = s.model;
    try {
        apply_override(trial, assignment);
    } catch (const Error& e) {
        if (std::string(e.what()).find("unknown key") != std::string::npos)
            fail(where, ": unknown key '", key, "' (neither a training key nor a model key)");
        throw;
    }
    if (!allow_model_keys) fail(where, ": model key '", key, "' cannot change when resuming a run");
    s.model = trial;
}

void validate_train_setup(const TrainSetup& s, const std::string& where) {
    const TrainConfig& c = s.train;
    auto positive = [&](const char* key, long long v) {
        if (v <= 0) fail(where, ": ", key, " must be positive, not ", v);
    };
    positive("batch_size", c.batch_size);
    positive("seq_len", c.seq_len);
    positive("gradient_accumulation_steps", c.gradient_accumulation_steps);
    positive("eval_interval", c.eval_interval);
    positive("eval_iters", c.eval_iters);
    positive("log_interval", c.log_interval);
    positive("keep_last", c.keep_last);
    if (c.max_iters < 0) fail(where, ": max_iters must be >= 0");
    if (c.warmup_iters < 0 || c.lr_decay_iters < 0)
        fail(where, ": warmup_iters and lr_decay_iters must be >= 0");
    if (!(c.learning_rate >= 0) || !(c.min_lr >= 0))
        fail(where, ": learning_rate and min_lr must be >= 0");
    if (!(c.weight_decay >= 0)) fail(where, ": weight_decay must be >= 0");
    if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1))
        fail(where, ": beta1 and beta2 must be in [0, 1)");
    if (!(c.adam_eps > 0)) fail(where, ": adam_eps must be positive");
    if (!(c.grad_clip >= 0)) fail(where, ": grad_clip must be >= 0");
    if (c.sample_tokens < 0) fail(where, ": sample_tokens must be >= 0");
    if (c.threads < 0) fail(where, ": threads must be >= 0");
    parse_matmul_precision(c.matmul_precision, where + ": key 'matmul_precision'");
    if (c.seed < 0) fail(where, ": seed must be >= 0");
    if (!(c.dist_timeout > 0)) fail(where, ": dist_timeout must be positive");
    parse_token_format(c.data_format, where);
    if (!(c.distill_weight >= 0)) fail(where, ": distill_weight must be >= 0");
    if (!(c.distill_temperature > 0)) fail(where, ": distill_temperature must be positive");
    if (c.distill_schedule != "constant" && c.distill_schedule != "linear")
        fail(where, ": distill_schedule '", c.distill_schedule, "' is not constant or linear");
    if (c.seq_len > s.model.block_size)
        fail(where, ": seq_len ", c.seq_len, " exceeds the model's block_size ",
             s.model.block_size);
}

}  // namespace t6
