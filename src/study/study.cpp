#include "study/study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "core/timing.h"
#include "infer/decoder.h"
#include "infer/generation.h"
#include "model/attn/kinds.h"
#include "model/checkpoint.h"
#include "model/equal_params.h"
#include "model/kv_cache.h"
#include "model/model_stats.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace t6::study {

namespace {

using Clock = std::chrono::steady_clock;

// The plan's identity: what must not change between the sessions of one study.
json plan_identity(const StudyPlan& p) {
    json t = p.base.train.to_json();
    for (const char* k : {"out_dir", "threads", "log_interval", "keep_last"}) t.erase(k);
    return {{"model", p.base.model.to_json()}, {"train", t}};
}

// A plan written before a key existed (a newer t6 added a training or model key) lacks it: take
// the key as the current plan has it when that is the key's default, so the study continues.
json with_new_defaults(json old, const json& ident) {
    const json defaults = {{"model", ModelConfig{}.to_json()}, {"train", TrainConfig{}.to_json()}};
    for (const char* section : {"model", "train"}) {
        if (!old.contains(section) || !old[section].is_object() || !ident.contains(section))
            continue;
        for (const auto& [key, value] : ident[section].items())
            if (!old[section].contains(key) && defaults[section].contains(key) &&
                defaults[section][key] == value)
                old[section][key] = value;
    }
    return old;
}

std::vector<json> read_jsonl(const std::string& path) {
    std::vector<json> out;
    std::ifstream in(path);
    if (!in) fail(path, ": cannot read the training log");
    std::string line;
    long n = 0;
    while (std::getline(in, line)) {
        n++;
        if (line.empty()) continue;
        json j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) fail(path, ":", n, ": not a JSON object");
        out.push_back(std::move(j));
    }
    return out;
}

double num_or(const json& j, const char* key, double def) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : def;
}

}  // namespace

const std::vector<std::string>& all_kinds() {
    static const std::vector<std::string> k = [] {
        std::vector<std::string> v;
        for (const auto& r : attention_kinds()) v.push_back(r.preset_suffix);
        return v;
    }();
    return k;
}

AttentionKind kind_attention(const std::string& kind, const std::string& where) {
    for (const auto& r : attention_kinds())
        if (kind == r.preset_suffix) return r.kind;
    fail(where, ": unknown kind '", kind, "' (kinds: ", preset_suffix_list(), ")");
}

std::string StudyPlan::run_dir(const std::string& kind) const {
    return (fs::path(out_dir()) / "runs" / kind).string();
}

std::string StudyPlan::report_path() const {
    return report_dir.empty() ? (fs::path(out_dir()) / "report").string() : report_dir;
}

long long StudyPlan::tokens_per_step() const {
    return (long long)base.train.batch_size * base.train.seq_len *
           base.train.gradient_accumulation_steps;
}

void apply_study_json(StudyPlan& plan, const json& j, const std::string& where) {
    if (!j.is_object()) fail(where, ": \"study\" must be a JSON object");
    for (auto& [key, v] : j.items()) {
        const std::string w = where + ": study." + key;
        if (key == "kinds") {
            if (!v.is_array() || v.empty()) fail(w, " must be a non-empty array of kind names");
            plan.kinds.clear();
            for (const auto& k : v) {
                if (!k.is_string()) fail(w, " must hold kind names, not ", k.dump());
                plan.kinds.push_back(k.get<std::string>());
            }
        } else if (key == "title" || key == "report_dir") {
            if (!v.is_string()) fail(w, " must be a string");
            (key == "title" ? plan.title : plan.report_dir) = v.get<std::string>();
        } else if (key == "decode_context" || key == "decode_steps") {
            if (!v.is_number_integer()) fail(w, " must be an integer");
            (key == "decode_context" ? plan.decode_context : plan.decode_steps) = v.get<int>();
        } else {
            fail(where, ": unknown study key '", key,
                 "' (kinds, title, report_dir, decode_context, decode_steps)");
        }
    }
}

ModelConfig kind_model(const StudyPlan& plan, const std::string& kind) {
    const AttentionKind a = kind_attention(kind, "t6 study");
    for (const auto& c : equal_param_variants(plan.base.model))
        if (c.attention == a) return c;
    fail("t6 study: no equal-parameter variant for '", kind, "'");
}

std::string equal_params_rule(const ModelConfig& b) {
    std::ostringstream o;
    o << "every kind keeps n_layer " << b.n_layer << ", n_embd " << b.n_embd << ", d_h "
      << b.head_dim << ", the MLP, TPA ranks R_Q/R_K/R_V " << b.q_rank << "/" << b.k_rank << "/"
      << b.v_rank << " and MLA latents d'_c " << b.q_lora_rank << ", d_c " << b.kv_lora_rank
      << ", d_h^R " << b.qk_rope_head_dim
      << "; MHA has n_embd/d_h = " << std::max(1, b.n_embd / b.head_dim)
      << " heads and each other kind the head count whose "
      << "attention parameters per layer come closest to MHA's 4*n_embd^2 = "
      << 4L * b.n_embd * b.n_embd << " (GQA: an even count with 2 KV heads; MQA: 1 KV head), "
      << "as the paper's Table 10";
    return o.str();
}

void validate_plan(const StudyPlan& plan) {
    if (plan.kinds.empty()) fail("t6 study: no kinds to compare");
    std::set<std::string> seen;
    for (const auto& k : plan.kinds) {
        kind_attention(k, "t6 study");
        if (!seen.insert(k).second) fail("t6 study: kind '", k, "' is listed twice");
    }
    if (plan.decode_context <= 0 || plan.decode_steps <= 0)
        fail("t6 study: decode_context and decode_steps must be positive");
    if (plan.base.train.data.empty()) fail("t6 study: no data given (data=DIR)");
    if (!fs::is_directory(plan.base.train.data))
        fail(plan.base.train.data, ": data folder not found (t6 prepare writes one)");
    if (plan.base.train.init_from != "scratch")
        fail("t6 study: every kind trains from scratch (init_from must be \"scratch\")");
    for (const auto& k : plan.kinds) {
        TrainSetup s = plan.base;
        s.model = kind_model(plan, k);
        s.model.validate("t6 study: model of kind " + k);
        validate_train_setup(s, "t6 study (" + k + ")");
    }
}

// Greedy decoding after a prompt of `context` tokens (the generation loop, infer/generation.h);
// the median of `steps` timed decoding steps, after one untimed warm-up step.
double measure_decode_tokens_per_s(const Model& model, int context, int steps) {
    const ModelConfig& c = model.config();
    Decoder dec(model, 1, context + steps + 1, CacheType::f32);
    std::vector<int32_t> prompt(context);
    for (int i = 0; i < context; i++) prompt[i] = int32_t((7L * i + 1) % c.vocab_size);
    GenerationParams gp;
    gp.sampling.temperature = 0;  // greedy
    gp.max_tokens = steps + 2;    // steps + 1 decoding steps: none follows the last token
    SequenceSampler seq(gp, c.vocab_size);
    GenerationHooks hooks;
    hooks.time_steps = true;
    std::vector<double> secs = generate(dec, 0, prompt, seq, hooks).step_seconds;
    secs.erase(secs.begin());  // the first step warms up
    return 1.0 / std::max(median(secs), 1e-12);
}

KindSummary summarize_kind(const StudyPlan& plan, const std::string& kind) {
    KindSummary s;
    s.kind = kind;
    s.model = kind_model(plan, kind);
    const ModelStats st = model_stats(s.model);
    s.params = (long long)st.params_total;
    s.attention_params_per_layer = attention_params_per_layer(s.model);
    s.kv_bytes_per_token = (long long)st.kv_numbers_per_token_per_layer * s.model.n_layer * 4;
    const std::string dir = plan.run_dir(kind);
    const std::string done_path = (fs::path(dir) / "done.json").string();
    const json done = json::parse(read_file_text(done_path), nullptr, false);
    if (done.is_discarded() || !done.is_object()) fail(done_path, ": not a JSON object");
    s.decode_tokens_per_s = num_or(done, "decode_tokens_per_s", 0);
    s.decode_context = int(num_or(done, "decode_context", 0));

    const long long tps = plan.tokens_per_step();
    double prev_tokens = 0, train_time = 0, train_toks = 0;
    bool have_eval = false;
    s.best_val_loss = INFINITY;
    for (const json& j : read_jsonl((fs::path(dir) / "metrics.jsonl").string())) {
        const std::string k = j.value("kind", "");
        if (k == "train") {
            const double tok = num_or(j, "tokens", 0), rate = num_or(j, "tokens_per_s", 0);
            s.train_tokens.push_back(tok);
            s.train_loss.push_back(num_or(j, "loss", NAN));
            if (rate > 0 && tok > prev_tokens) {
                train_time += (tok - prev_tokens) / rate;
                train_toks += tok - prev_tokens;
            }
            prev_tokens = tok;
        } else if (k == "eval") {
            const long long step = (long long)num_or(j, "step", 0);
            const double v = num_or(j, "val_loss", NAN);
            s.eval_tokens.push_back(double(step * tps));
            s.eval_val.push_back(v);
            s.eval_train.push_back(num_or(j, "train_loss", NAN));
            s.final_val_loss = v;
            s.final_train_loss = s.eval_train.back();
            have_eval = true;
            // As the trainer's best: evaluations after training started (step 0 is the baseline).
            if (step > 0 && v < s.best_val_loss) {
                s.best_val_loss = v;
                s.best_step = step;
            }
        } else if (k == "summary") {
            s.steps = (long long)num_or(j, "step", 0);
            s.tokens = (long long)num_or(j, "tokens", 0);
            s.wall_s = num_or(j, "elapsed_s", 0);
        }
    }
    if (!have_eval) fail(dir, "/metrics.jsonl: no evaluation in the training log");
    s.train_tokens_per_s = train_time > 0 ? train_toks / train_time : 0;
    return s;
}

json KindSummary::to_json() const {
    return {{"kind", kind},
            {"attention", attention_kind_name(model.attention)},
            {"n_head", model.n_head},
            {"n_kv_head", model.kv_heads()},
            {"params", params},
            {"attention_params_per_layer", attention_params_per_layer},
            {"kv_cache_bytes_per_token", kv_bytes_per_token},
            {"steps", steps},
            {"tokens", tokens},
            {"final_val_loss", final_val_loss},
            {"final_val_ppl", std::exp(final_val_loss)},
            {"best_val_loss", best_val_loss},
            {"best_val_ppl", std::exp(best_val_loss)},
            {"best_step", best_step},
            {"final_train_loss", final_train_loss},
            {"train_tokens_per_s", train_tokens_per_s},
            {"decode_tokens_per_s", decode_tokens_per_s},
            {"decode_context", decode_context},
            {"wall_s", wall_s},
            {"model", model.to_json()}};
}

json StudyResult::to_json() const {
    json k = json::array();
    for (const auto& s : kinds) {
        json j = s.to_json();
        j.erase("model");
        k.push_back(j);
    }
    return {{"kinds", k},
            {"trained", trained},
            {"skipped", skipped},
            {"wall_s", wall_s},
            {"report_dir", report_dir}};
}

namespace {

// Measures a finished kind's decoding speed again from its last complete checkpoint and rewrites
// its done.json with the new figure.
void retime_kind_decode(const StudyPlan& plan, const std::string& kind,
                        const std::string& done_path, FILE* log) {
    const auto ckpts = list_complete_checkpoints(plan.run_dir(kind));
    if (ckpts.empty()) fail(plan.run_dir(kind), ": no complete checkpoint to time decoding with");
    Model model(kind_model(plan, kind));
    load_weights(model, checkpoint_weights_path(ckpts.back().path));
    const double dec = measure_decode_tokens_per_s(model, plan.decode_context, plan.decode_steps);
    json done = json::parse(read_file_text(done_path), nullptr, false);
    if (done.is_discarded() || !done.is_object()) fail(done_path, ": not a JSON object");
    if (log)
        std::fprintf(log, "%s: decoding %.1f tokens/s at context %d (batch 1; was %.1f)\n",
                     kind.c_str(), dec, plan.decode_context,
                     done.value("decode_tokens_per_s", 0.0));
    done["decode_tokens_per_s"] = dec;
    done["decode_context"] = plan.decode_context;
    done["decode_steps"] = plan.decode_steps;
    write_file_atomic(done_path, done.dump(2) + "\n");
}

}  // namespace

StudyResult run_study(const StudyPlan& plan, FILE* log, long long stop_at, bool retime_decode) {
    validate_plan(plan);
    const auto t0 = Clock::now();
    const std::string out = plan.out_dir();
    fs::create_directories(out);
    const std::string plan_path = (fs::path(out) / "study.json").string();
    const json ident = plan_identity(plan);
    if (fs::exists(plan_path)) {
        const json old = json::parse(read_file_text(plan_path), nullptr, false);
        if (old.is_discarded() || !old.is_object())
            fail(plan_path, ": not a JSON object (remove it or choose another out_dir)");
        const json diff = json::diff(with_new_defaults(old, ident), ident);
        if (!diff.empty())
            fail(out, ": holds a study with a different plan (", diff[0].value("path", ""),
                 " differs: was ",
                 old.value(json::json_pointer(diff[0].value("path", "")), json()).dump(),
                 "); choose another out_dir or restore the plan");
    } else {
        write_file_atomic(plan_path, ident.dump(2) + "\n");
    }

    if (log) {
        std::fprintf(log, "study %s: %zu kinds, %lld steps of %lld tokens, data %s\n",
                     plan.title.c_str(), plan.kinds.size(), (long long)plan.base.train.max_iters,
                     plan.tokens_per_step(), plan.base.train.data.c_str());
        std::fprintf(log, "equal parameters: %s\n", equal_params_rule(plan.base.model).c_str());
        for (const auto& k : plan.kinds) {
            const ModelConfig m = kind_model(plan, k);
            const bool grouped = kind_info(m).equal_kv_heads > 0;  // MQA, GQA
            const std::string heads =
                std::to_string(m.n_head) +
                (grouped ? " (" + std::to_string(m.kv_heads()) + " KV)" : std::string());
            std::fprintf(log, "  %-10s %-10s heads %8ld attention params/layer %10zu params\n",
                         k.c_str(), heads.c_str(), attention_params_per_layer(m),
                         model_stats(m).params_total);
        }
        std::fflush(log);
    }

    StudyResult res;
    for (const auto& k : plan.kinds) {
        const std::string dir = plan.run_dir(k);
        const std::string done_path = (fs::path(dir) / "done.json").string();
        if (fs::exists(done_path)) {
            if (log)
                std::fprintf(log, "== %s: already done (%s), not retrained\n", k.c_str(),
                             done_path.c_str());
            if (retime_decode) retime_kind_decode(plan, k, done_path, log);
            res.skipped.push_back(k);
            continue;
        }
        std::unique_ptr<Trainer> tr;
        if (!list_complete_checkpoints(dir).empty()) {
            if (log) std::fprintf(log, "== %s: resuming %s\n", k.c_str(), dir.c_str());
            tr = Trainer::resume(dir, {}, log);
        } else {
            if (log) std::fprintf(log, "== %s: training in %s\n", k.c_str(), dir.c_str());
            TrainSetup s = plan.base;
            s.model = kind_model(plan, k);
            s.model_source = "t6 study (" + k + ")";
            s.model_given = true;
            s.train.out_dir = dir;
            tr = std::make_unique<Trainer>(s, log);
        }
        const TrainResult r = tr->run(stop_at);
        if (stop_at >= 0 && r.end_step < plan.base.train.max_iters) {
            res.trained.push_back(k);
            continue;
        }
        const double dec =
            measure_decode_tokens_per_s(tr->model(), plan.decode_context, plan.decode_steps);
        if (log)
            std::fprintf(log, "%s: decoding %.1f tokens/s at context %d (batch 1)\n", k.c_str(),
                         dec, plan.decode_context);
        const json done = {{"kind", k},
                           {"steps", tr->state().step},
                           {"decode_tokens_per_s", dec},
                           {"decode_context", plan.decode_context},
                           {"decode_steps", plan.decode_steps}};
        write_file_atomic(done_path, done.dump(2) + "\n");
        res.trained.push_back(k);
    }
    res.wall_s = seconds_since(t0);
    if (stop_at >= 0) return res;
    for (const auto& k : plan.kinds) res.kinds.push_back(summarize_kind(plan, k));
    res.report_dir = plan.report_path();
    write_report(plan, res.kinds, res.report_dir);
    if (log) std::fprintf(log, "report: %s/report.md\n", res.report_dir.c_str());
    return res;
}

}  // namespace t6::study
