// The report of a study: report.md (the table and the plan), loss.svg, summary.json, logs/.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "model/attn/kinds.h"
#include "study/study.h"
#include "study/svg_plot.h"
#include "text/data_meta.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace t6::study {

namespace {

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

std::string commas(long long v) {
    std::string s = std::to_string(v < 0 ? -v : v), o;
    for (size_t i = 0; i < s.size(); i++) {
        if (i && (s.size() - i) % 3 == 0) o += ',';
        o += s[i];
    }
    return v < 0 ? "-" + o : o;
}

std::string heads_text(const KindSummary& k) {
    if (kind_info(k.model).equal_kv_heads > 0)  // MQA, GQA: shared KV heads
        return std::to_string(k.model.n_head) + " (" + std::to_string(k.model.kv_heads()) + " KV)";
    return std::to_string(k.model.n_head);
}

const KindSummary* find(const std::vector<KindSummary>& ks, const std::string& kind) {
    for (const auto& k : ks)
        if (k.kind == kind) return &k;
    return nullptr;
}

std::string loss_svg(const StudyPlan& plan, const std::vector<KindSummary>& kinds) {
    PlotPanel train{
        "training loss (logged steps, after the first 10%)", "training tokens", "loss", {}};
    PlotPanel val{"validation loss", "training tokens", "loss", {}};
    PlotPanel zoom{"validation loss, second half", "training tokens", "loss", {}};
    double half = 0;
    for (const auto& k : kinds)
        if (!k.eval_tokens.empty()) half = std::max(half, 0.5 * k.eval_tokens.back());
    double total = 0;
    for (const auto& k : kinds)
        if (!k.train_tokens.empty()) total = std::max(total, k.train_tokens.back());
    for (size_t i = 0; i < kinds.size(); i++) {
        const KindSummary& k = kinds[i];
        const std::string c = plot_color(i);
        // The first 10% (the steep initial drop, shown by the validation panel) would flatten
        // the rest of the curve.
        PlotSeries tr{k.kind, c, {}, {}, false, false};
        for (size_t j = 0; j < k.train_tokens.size(); j++)
            if (k.train_tokens[j] >= 0.1 * total) {
                tr.x.push_back(k.train_tokens[j]);
                tr.y.push_back(k.train_loss[j]);
            }
        train.series.push_back(tr);
        val.series.push_back({k.kind, c, k.eval_tokens, k.eval_val, false, true});
        PlotSeries z{k.kind, c, {}, {}, false, true};
        for (size_t j = 0; j < k.eval_tokens.size(); j++)
            if (k.eval_tokens[j] >= half) {
                z.x.push_back(k.eval_tokens[j]);
                z.y.push_back(k.eval_val[j]);
            }
        zoom.series.push_back(z);
    }
    return svg_line_chart(plan.title + ": loss against training tokens", {train, val, zoom});
}

}  // namespace

void write_report(const StudyPlan& plan, const std::vector<KindSummary>& kinds,
                  const std::string& dir) {
    fs::create_directories(fs::path(dir) / "logs");
    for (const auto& k : kinds)
        fs::copy_file(fs::path(plan.run_dir(k.kind)) / "metrics.jsonl",
                      fs::path(dir) / "logs" / (k.kind + ".jsonl"),
                      fs::copy_options::overwrite_existing);
    write_file_atomic((fs::path(dir) / "loss.svg").string(), loss_svg(plan, kinds));

    const TrainConfig& t = plan.base.train;
    // Training has read it already (a broken one would have stopped it).
    const json meta = t.data.empty() ? json() : read_data_meta(t.data);

    json summary = {{"title", plan.title},
                    {"command", plan.command},
                    {"data", t.data},
                    {"base_model", plan.base.model.to_json()},
                    {"train", t.to_json()},
                    {"equal_params_rule", equal_params_rule(plan.base.model)},
                    {"tokens_per_step", plan.tokens_per_step()},
                    {"kinds", json::array()}};
    for (const auto& k : kinds) summary["kinds"].push_back(k.to_json());
    write_file_atomic((fs::path(dir) / "summary.json").string(), summary.dump(2) + "\n");

    std::ostringstream o;
    o << "# " << plan.title << "\n\n";
    if (!plan.command.empty())
        o << "Regenerate (a finished kind is not retrained; delete its `runs/<kind>/` to retrain "
             "it):\n\n```\n"
          << plan.command << "\n```\n\n";
    o << "## Setup\n\n";
    o << "- Data: `" << t.data << "`";
    if (meta.is_object() && meta.contains("vocab_size")) {
        std::string tok = "?";
        if (meta.contains("tokenizer") && meta["tokenizer"].is_object())
            tok = meta["tokenizer"].value("format", "?");
        o << " (tokenizer " << tok << ", vocabulary " << meta["vocab_size"].dump();
        if (meta.contains("train") && meta["train"].contains("tokens"))
            o << ", " << commas(meta["train"]["tokens"].get<long long>()) << " train / "
              << commas(meta["val"]["tokens"].get<long long>()) << " validation tokens";
        o << ")";
    }
    o << "\n";
    o << "- Training, identical for every kind: " << t.max_iters << " steps of "
      << t.gradient_accumulation_steps << " x " << t.batch_size << " x " << t.seq_len << " = "
      << commas(plan.tokens_per_step()) << " tokens ("
      << commas(t.max_iters * plan.tokens_per_step()) << " in all), seed " << t.seed
      << " (same data order), AdamW lr " << t.learning_rate << " -> " << t.min_lr << " (warm-up "
      << t.warmup_iters << ", cosine over "
      << (t.lr_decay_iters > 0 ? t.lr_decay_iters : t.max_iters) << " steps"
      << (t.decay_lr ? "" : ", decay off") << "), betas " << t.beta1 << "/" << t.beta2
      << ", weight decay " << t.weight_decay << ", grad clip " << t.grad_clip << ", "
      << (t.threads > 0 ? std::to_string(t.threads) : std::string("all")) << " thread(s)\n";
    o << "- Evaluation: mean loss over " << t.eval_iters << " batches of each split every "
      << t.eval_interval << " steps and at the end; perplexity = exp(loss) per token\n";
    o << "- Base model: " << plan.base.model.describe()
      << " (vocabulary, layers and widths shared)\n";
    o << "- Equal parameters: " << equal_params_rule(plan.base.model) << "\n";
    o << "- KV cache: float32 numbers cached per token over all layers; decoding: batch 1, "
         "median of "
      << plan.decode_steps << " steps with " << plan.decode_context << " tokens in the cache\n\n";

    o << "## Results\n\n";
    o << "| kind | parameters | heads | attention params/layer | KV cache bytes/token | final val "
         "loss | final val ppl | best val loss | best val ppl | train tokens/s | decode tokens/s "
         "@ "
      << plan.decode_context << " | wall time |\n";
    o << "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    for (const auto& k : kinds)
        o << "| " << k.kind << " | " << commas(k.params) << " | " << heads_text(k) << " | "
          << commas(k.attention_params_per_layer) << " | " << commas(k.kv_bytes_per_token) << " | "
          << fmt("%.4f", k.final_val_loss) << " | " << fmt("%.3f", std::exp(k.final_val_loss))
          << " | " << fmt("%.4f", k.best_val_loss) << " | "
          << fmt("%.3f", std::exp(k.best_val_loss)) << " | "
          << commas(std::llround(k.train_tokens_per_s)) << " | "
          << commas(std::llround(k.decode_tokens_per_s)) << " | " << fmt("%.0f s", k.wall_s)
          << " |\n";
    o << "\n![loss curves](loss.svg)\n\n";

    const KindSummary *mha = find(kinds, "mha"), *t6 = find(kinds, "t6");
    if (mha && t6) {
        const double d = t6->final_val_loss - mha->final_val_loss;
        const double db = t6->best_val_loss - mha->best_val_loss;
        o << "**T6 against MHA at equal parameters:** final validation loss "
          << fmt("%.4f", t6->final_val_loss) << " vs " << fmt("%.4f", mha->final_val_loss) << " ("
          << fmt("%+.4f", d) << "): T6 is " << (d <= 0 ? "at or below" : "above") << " MHA; best "
          << fmt("%.4f", t6->best_val_loss) << " vs " << fmt("%.4f", mha->best_val_loss) << " ("
          << fmt("%+.4f", db) << "). T6 caches " << commas(t6->kv_bytes_per_token)
          << " bytes per token against MHA's " << commas(mha->kv_bytes_per_token) << " ("
          << fmt("%.1f",
                 double(mha->kv_bytes_per_token) / double(std::max(1LL, t6->kv_bytes_per_token)))
          << "x less).\n\n";
    }
    o << "Every figure except decode speed comes from the training logs in `logs/<kind>.jsonl` "
         "(the trainer's `metrics.jsonl`): validation losses are the evaluations logged there "
         "(best = lowest after step 0), train tokens/s is the logged training tokens over the "
         "time of the training steps (evaluations excluded), wall time includes evaluations. "
         "Speeds depend on the machine and its load. `summary.json` holds the same numbers.\n";
    write_file_atomic((fs::path(dir) / "report.md").string(), o.str());
}

}  // namespace t6::study
