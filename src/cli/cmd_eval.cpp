// t6 eval: evaluation of checkpoints.
//   t6 eval ppl  loss and perplexity of token files or text, with sliding windows
//   t6 eval mc   zero-/few-shot multiple-choice tasks scored as lm-evaluation-harness scores them
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/tokenizer_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/threads.h"
#include "eval/decoder_scorer.h"
#include "eval/mc_eval.h"
#include "eval/mc_report.h"
#include "eval/perplexity.h"
#include "model/checkpoint.h"
#include "model/quantize_io.h"
#include "train/token_data.h"

namespace t6::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Progress on stderr, at most once a second: done/total units, rate, ETA.
class Progress {
  public:
    Progress(std::string what, std::string unit, long long total, bool quiet)
        : what_(std::move(what)), unit_(std::move(unit)), total_(total), quiet_(quiet) {}
    void update(long long done, bool final = false) {
        const double s = seconds_since(t0_);
        if (quiet_ || (!final && s - last_ < 1.0)) return;
        last_ = s;
        const double rate = s > 0 ? double(done) / s : 0.0;
        std::string eta =
            rate > 0 && done < total_ ? fixed(double(total_ - done) / rate, 0) + " s" : "0 s";
        std::fprintf(stderr, "[t6 eval %s] %s / %s %s | %.1f %s/s | %s %s\n", what_.c_str(),
                     with_commas(done).c_str(), with_commas(total_).c_str(), unit_.c_str(), rate,
                     unit_.c_str(), final ? "elapsed" : "ETA",
                     final ? (fixed(s, 1) + " s").c_str() : eta.c_str());
    }

  private:
    std::string what_, unit_;
    long long total_;
    bool quiet_;
    Clock::time_point t0_ = Clock::now();
    double last_ = 0;
};

// Every value of a repeatable option (ArgParser keeps the last), comma lists split.
std::vector<std::string> all_values(int argc, char** argv, const std::string& name) {
    std::vector<std::string> out;
    const std::string flag = "--" + name, prefix = flag + "=";
    for (int i = 0; i < argc; i++) {
        std::string a = argv[i], v;
        if (a == flag && i + 1 < argc)
            v = argv[++i];
        else if (a.rfind(prefix, 0) == 0)
            v = a.substr(prefix.size());
        else
            continue;
        for (auto& x : split_list(v)) out.push_back(x);
    }
    return out;
}

// ---- t6 eval ppl -------------------------------------------------------------------------

// One token stream to score: its size and how to read a range of it.
struct Stream {
    std::string name;
    size_t n = 0;
    eval::TokenSource source;
};

int eval_ppl(int argc, char** argv) {
    ArgParser p("eval ppl",
                "--model CKPT (--data DIR [--split val] | --tokens FILE.bin | --text FILE) "
                "[options]",
                "Loss and perplexity of a checkpoint on token files or text, scored with sliding "
                "windows of --context input tokens every --stride tokens; every token after the "
                "first of a stream is scored exactly once (the HF/lm-eval rolling scheme).");
    p.option("model", "CKPT", "checkpoint (.safetensors or folder)");
    p.option("data", "DIR", "data folder from t6 prepare (train.bin/val.bin or llm.c shards)");
    p.option("split", "NAME", "split of --data: val or train", "val");
    p.option("tokens", "FILE", "one token file (nanoGPT .bin or llm.c shard)");
    p.option("format", "F",
             "token file format of --tokens/--data: auto (llm.c header, or a raw nanoGPT file "
             "named train.bin/val.bin), nanogpt (raw uint16, any name) or llmc",
             "auto");
    p.option("text", "FILE", "a text file, tokenized with the checkpoint's tokenizer");
    p.option("tokenizer", "NAME", "gpt2, bytes or a tokenizer file (default: the checkpoint's)");
    p.option("context", "N", "input tokens per window", "the model's block_size");
    p.option("stride", "S", "new tokens scored per window, <= context", "the context");
    p.option("batch", "B", "windows per forward pass", "4");
    p.option("max-tokens", "N", "score only the first N tokens (0 = all)", "0");
    p.option("weights", "TYPE",
             "f32, or q8 / q4: score the model whose decoder matrices are quantized and "
             "dequantized (what decoding with --weights q8|q4 computes), or q8a8 / q4a8: those "
             "codes times activations quantized to int8 per block, which only the decoder runs, "
             "so they imply --cache (f32 unless given); a `t6 quantize` checkpoint takes only "
             "the a8 type of its scheme",
             "f32");
    p.option("cache", "TYPE",
             "score through the incremental decoder with a KV cache of this type (f32, bf16 or "
             "q8), each window prefilled in chunks, instead of the training forward");
    p.option("threads", "N", "threads", "all cores");
    p.flag("quiet", "no progress on stderr");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (!p.positionals().empty())
        fail("t6 eval ppl: unexpected argument '", p.positionals()[0],
             "' (eval ppl takes options only; see t6 eval ppl --help)");
    if (p.has("threads")) set_num_threads(p.get_int("threads"));
    if (!p.has("model")) fail("t6 eval ppl: --model CKPT is required");
    const TokenFormat format = parse_token_format(p.get("format"), "t6 eval ppl: --format");
    if (p.has("text") && p.has("format"))
        fail("t6 eval ppl: --format applies to --tokens and --data, not --text");
    const std::string weights = p.get("weights");
    if (weights != "f32" && weights != "q8" && weights != "q4" && weights != "q8a8" &&
        weights != "q4a8")
        fail("t6 eval ppl: --weights: unknown type '", weights,
             "' (expected f32, q8, q4, q8a8 or q4a8)");
    const bool quantized = weights != "f32";
    // q8a8 / q4a8 (int8 activations) exist only in the decoder: they score through it.
    const bool a8 = weights == "q8a8" || weights == "q4a8";
    const QuantScheme scheme = quantized ? parse_quant_scheme(a8 ? weights.substr(0, 2) : weights,
                                                              "t6 eval ppl: --weights")
                                         : QuantScheme::q8;
    const bool cached = p.has("cache") || a8;
    const CacheType cache_type = p.has("cache") ? parse_cache_type(p.get("cache")) : CacheType::f32;
    const int sources = int(p.has("data")) + int(p.has("tokens")) + int(p.has("text"));
    if (sources != 1) fail("t6 eval ppl: give exactly one of --data, --tokens, --text");
    const std::string ckpt = p.get("model");
    // A `t6 quantize` checkpoint is scored as stored: its dequantized weights, or with --weights
    // q8a8|q4a8 its codes times int8 activations in the decoder (as `t6 generate` decodes it).
    std::unique_ptr<Model> model;
    eval::DecoderWeights dw;  // what the decoder reads when cached
    if (is_quantized_checkpoint(ckpt)) {
        QuantizedCheckpoint qc = load_quantized(ckpt);
        if (a8 && qc.weights->scheme != scheme)
            fail("t6 eval ppl: ", ckpt, " holds ", quant_scheme_name(qc.weights->scheme),
                 " weights, not ", weights);
        if (quantized && !a8)
            fail("t6 eval ppl: ", ckpt, " is quantized already (drop --weights, or give --weights ",
                 quant_scheme_name(qc.weights->scheme), "a8 for int8 activations)");
        model = std::move(qc.model);
        if (a8)
            dw = {parse_weight_type(weights), qc.weights};  // the stored codes, int8 activations
    } else {
        model = load_model(ckpt);
        if (a8)
            dw.type = parse_weight_type(weights);  // the decoder quantizes the weights
        else if (quantized)
            apply_dequantized(*model, quantize_model(*model, scheme));
    }
    const ModelConfig& cfg = model->config();

    eval::PplOptions opt;
    opt.context = p.has("context") ? p.get_int("context") : cfg.block_size;
    opt.stride = p.has("stride") ? p.get_int("stride") : opt.context;
    opt.batch = p.get_int("batch");
    if (opt.context <= 0 || opt.context > cfg.block_size)
        fail("t6 eval ppl: --context must be in [1, ", cfg.block_size, "] (block_size)");
    if (opt.stride <= 0 || opt.stride > opt.context)
        fail("t6 eval ppl: --stride must be in [1, --context = ", opt.context, "]");
    if (opt.batch <= 0) fail("t6 eval ppl: --batch must be positive");
    const long long max_tokens = p.get_int64("max-tokens");
    if (max_tokens < 0) fail("t6 eval ppl: --max-tokens must be >= 0");

    std::vector<Stream> streams;
    std::vector<int32_t> text_ids;
    std::vector<TokenFile> files;
    std::unique_ptr<Tokenizer> tok;
    if (p.has("text")) {
        tok = resolve_tokenizer(p.get("tokenizer"), ckpt, cfg.vocab_size);
        text_ids = tok->encode(read_file_text(p.get("text")));
        if (max_tokens > 0 && text_ids.size() > size_t(max_tokens)) text_ids.resize(max_tokens);
        streams.push_back({p.get("text"), text_ids.size(), [&](size_t b, size_t n, int32_t* o) {
                               std::copy(text_ids.begin() + b, text_ids.begin() + b + n, o);
                           }});
    } else {
        std::vector<std::string> paths;
        if (p.has("tokens")) {
            paths = {p.get("tokens")};
        } else {
            DataFiles df = find_data_files(p.get("data"));
            const std::string split = p.get("split");
            if (split != "val" && split != "train")
                fail("t6 eval ppl: --split must be val or train");
            paths = split == "val" ? df.val : df.train;
            if (paths.empty()) fail(p.get("data"), ": no ", split, " token files");
        }
        for (const auto& path : paths) files.emplace_back(path, format, cfg.vocab_size);
        long long left = max_tokens > 0 ? max_tokens : -1;
        for (const TokenFile& f : files) {
            if (left == 0) break;
            size_t n = f.size();
            if (left > 0 && n > size_t(left)) n = size_t(left);
            if (left > 0) left -= (long long)n;
            const TokenFile* fp = &f;
            streams.push_back({f.path(), n, [fp](size_t b, size_t k, int32_t* o) {
                                   if (!fp->scanned()) fp->check_range(b, k);
                                   for (size_t i = 0; i < k; i++) o[i] = int32_t(fp->token(b + i));
                               }});
        }
    }
    long long total = 0;
    for (const auto& s : streams) total += s.n >= 2 ? (long long)s.n - 1 : 0;
    if (total == 0) fail("t6 eval ppl: fewer than 2 tokens to score");

    Progress progress("ppl", "tokens", total, p.has("quiet"));
    const auto t0 = Clock::now();
    eval::PplTotals sum;
    for (const auto& s : streams) {
        if (s.n < 2) continue;
        const long long before = sum.tokens;
        const auto prog = [&](long long done) { progress.update(before + done); };
        eval::PplTotals t =
            cached ? eval::score_stream_cached(*model, cache_type, s.source, s.n, opt, prog, dw)
                   : eval::score_stream(*model, s.source, s.n, opt, nullptr, prog);
        sum.nll += t.nll;
        sum.tokens += t.tokens;
    }
    const double elapsed = seconds_since(t0);
    progress.update(sum.tokens, true);
    const double loss = sum.loss(), ppl = std::exp(loss);
    double bpb = NAN;
    if (tok) {  // bits per byte of the scored tokens' bytes
        size_t bytes = 0;
        for (size_t i = 1; i < text_ids.size(); i++) bytes += tok->token_bytes(text_ids[i]).size();
        bpb = sum.nll / (std::log(2.0) * double(bytes));
    }
    std::printf("%s: loss %.4f | perplexity %.3f | %s tokens scored (context %d, stride %d)%s\n",
                ckpt.c_str(), loss, ppl, with_commas(sum.tokens).c_str(), opt.context, opt.stride,
                tok ? (" | " + fixed(bpb, 4) + " bits/byte").c_str() : "");
    if (p.has("json")) {
        nlohmann::json j = {{"val_loss", loss},
                            {"perplexity", ppl},
                            {"tokens_scored", sum.tokens},
                            {"nll_sum_nats", sum.nll},
                            {"context_tokens", opt.context},
                            {"stride_tokens", opt.stride},
                            {"weights", weights},
                            {"kv_cache", cached ? cache_type_name(cache_type) : "none"},
                            {"elapsed_s", elapsed},
                            {"tokens_per_s", elapsed > 0 ? double(sum.tokens) / elapsed : 0.0}};
        if (tok) j["bits_per_byte"] = bpb;
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

// ---- t6 eval mc --------------------------------------------------------------------------

nlohmann::json number_or_null(double v) {
    return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}

int eval_mc(int argc, char** argv) {
    ArgParser p("eval mc", "--model CKPT[,CKPT...] --task FILE.jsonl[,...] [options]",
                "Zero-/few-shot multiple-choice evaluation scored as lm-evaluation-harness: the "
                "summed log-likelihood of each choice's continuation given the prompt (acc), and "
                "divided by the choice's length in characters (acc_norm), with the harness's "
                "prompt templates for the native formats of HellaSwag, ARC, PIQA, SciQ, "
                "OpenBookQA, BoolQ, WinoGrande and MMLU. --model and --task may be repeated or "
                "comma lists; several models give a comparison table (one row per model).");
    p.option("model", "CKPT", "checkpoint(s)");
    p.option("task", "FILE", "task file(s), JSONL");
    p.option("format", "NAME",
             "auto, generic, hellaswag, arc, piqa, sciq, obqa, boolq, winogrande, mmlu", "auto");
    p.option("shots", "K", "few-shot examples per prompt, drawn from the same file", "0");
    p.option("seed", "S", "seed of the few-shot draw", "1234");
    p.option("limit", "N", "evaluate the first N documents of each task (0 = all)", "0");
    p.option("max-length", "N", "longest input; longer requests lose tokens on the left",
             "the model's block_size");
    p.option("tokenizer", "NAME", "gpt2, bytes or a tokenizer file (default: the checkpoint's)");
    p.option("table-metric", "M", "score of the comparison table: acc or acc_norm", "acc");
    p.option("report", "FILE", "write the markdown tables to FILE");
    p.option("threads", "N", "threads", "all cores");
    p.flag("no-cache-reuse", "recompute the context for every choice (for benchmarking)");
    p.flag("quiet", "no progress on stderr");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.has("threads")) set_num_threads(p.get_int("threads"));
    if (!p.positionals().empty())
        fail("t6 eval mc: unexpected argument '", p.positionals()[0], "'");
    const std::vector<std::string> models = all_values(argc, argv, "model");
    const std::vector<std::string> task_paths = all_values(argc, argv, "task");
    if (models.empty()) fail("t6 eval mc: --model CKPT is required");
    if (task_paths.empty()) fail("t6 eval mc: --task FILE.jsonl is required");
    const std::string metric = p.get("table-metric");
    if (metric != "acc" && metric != "acc_norm")
        fail("t6 eval mc: --table-metric must be acc or acc_norm");
    eval::McOptions opt;
    opt.shots = p.get_int("shots");
    opt.seed = uint64_t(p.get_int64("seed"));
    opt.limit = p.get_int("limit");
    if (opt.shots < 0) fail("t6 eval mc: --shots must be >= 0");
    if (opt.limit < 0) fail("t6 eval mc: --limit must be >= 0");
    const bool reuse = !p.has("no-cache-reuse");

    // Read every task first, so a bad file fails before any model is loaded.
    const eval::McFormat format = eval::parse_mc_format(p.get("format"));
    std::vector<eval::McTask> tasks;
    for (const auto& path : task_paths) tasks.push_back(eval::read_mc_task(path, format));

    const auto t0 = Clock::now();
    std::vector<eval::ModelResults> all;
    nlohmann::json jmodels = nlohmann::json::array();
    for (const auto& ckpt : models) {
        auto model = load_model(ckpt);
        const ModelConfig& cfg = model->config();
        auto tok = resolve_tokenizer(p.get("tokenizer"), ckpt, cfg.vocab_size);
        const int max_len = p.has("max-length") ? p.get_int("max-length") : cfg.block_size;
        eval::DecoderScorer scorer(*model, max_len, reuse);
        eval::ModelResults mr{ckpt, {}};
        nlohmann::json jtasks = nlohmann::json::array();
        for (const auto& task : tasks) {
            const int n = opt.limit > 0 ? std::min<int>(opt.limit, int(task.docs.size()))
                                        : int(task.docs.size());
            Progress progress("mc " + task.name, "docs", n, p.has("quiet"));
            const long long tokens_before = scorer.tokens_computed();
            eval::McResult r = eval::evaluate_mc(task, *tok, scorer, opt,
                                                 [&](int done, int) { progress.update(done); });
            progress.update(r.num_docs, true);
            const long long tokens = scorer.tokens_computed() - tokens_before;
            jtasks.push_back(
                {{"task", r.task},
                 {"format", r.format},
                 {"num_docs", r.num_docs},
                 {"num_fewshot", r.shots},
                 {"acc", r.acc.mean},
                 {"acc_stderr", number_or_null(r.acc.stderr_)},
                 {"acc_norm",
                  r.has_acc_norm ? number_or_null(r.acc_norm.mean) : nlohmann::json(nullptr)},
                 {"acc_norm_stderr",
                  r.has_acc_norm ? number_or_null(r.acc_norm.stderr_) : nlohmann::json(nullptr)},
                 {"requests", r.requests},
                 {"tokens_computed", tokens},
                 {"elapsed_s", r.elapsed_s},
                 {"docs_per_s", r.elapsed_s > 0 ? r.num_docs / r.elapsed_s : 0.0}});
            mr.tasks.push_back(std::move(r));
        }
        std::printf("%s (%s, %d-shot%s)\n%s\n", ckpt.c_str(), cfg.describe().c_str(), opt.shots,
                    reuse ? "" : ", no cache reuse", eval::task_table(mr.tasks).c_str());
        double avg = 0;
        for (const auto& r : mr.tasks) avg += eval::table_score(r, metric == "acc_norm");
        avg /= double(mr.tasks.size());
        jmodels.push_back({{"model", ckpt}, {"tasks", jtasks}, {"average", avg}});
        all.push_back(std::move(mr));
    }
    const std::string table = eval::comparison_table(all, metric == "acc_norm");
    if (all.size() > 1) std::printf("%s (%s)\n%s\n", "Comparison", metric.c_str(), table.c_str());
    if (p.has("report")) {
        std::string md =
            "## " + std::to_string(opt.shots) + "-shot, " + metric + " (%)\n\n" + table + "\n";
        for (const auto& m : all)
            md += "### " + m.model + "\n\n" + eval::task_table(m.tasks) + "\n";
        write_file_atomic(p.get("report"), md);
    }
    if (p.has("json"))
        std::printf("%s\n", nlohmann::json({{"models", jmodels},
                                            {"table_metric", metric},
                                            {"num_fewshot", opt.shots},
                                            {"seed", opt.seed},
                                            {"cache_reuse", reuse},
                                            {"elapsed_s", seconds_since(t0)}})
                                .dump()
                                .c_str());
    return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
    const std::string usage =
        "usage: t6 eval <ppl|mc> [options]   (t6 eval <ppl|mc> --help for details)\n\n"
        "  ppl  loss and perplexity on token files or text (sliding windows)\n"
        "  mc   zero-/few-shot multiple-choice tasks, scored as lm-evaluation-harness\n";
    if (argc < 1) fail("t6 eval: give a subcommand: ppl or mc (see t6 eval --help)");
    const std::string sub = argv[0];
    if (sub == "--help" || sub == "-h") {
        std::fputs(usage.c_str(), stdout);
        throw HelpShown{};
    }
    if (sub == "ppl") return eval_ppl(argc - 1, argv + 1);
    if (sub == "mc") return eval_mc(argc - 1, argv + 1);
    fail("t6 eval: unknown subcommand '", sub, "' (ppl or mc)");
}

}  // namespace t6::cli
