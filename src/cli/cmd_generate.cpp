// t6 generate: text from a checkpoint with the factorized KV cache: prefill the prompt, then
// decode token by token (FlashTPA for T6), streaming the text as it comes.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_arg.h"
#include "cli/tokenizer_arg.h"
#include "core/error.h"
#include "core/sysinfo.h"
#include "core/threads.h"
#include "infer/decoder.h"
#include "infer/generation.h"
#include "model/checkpoint.h"
#include "model/quantize_io.h"

namespace t6::cli {

int cmd_generate(int argc, char** argv) {
    ArgParser p("generate", "--model CHECKPOINT [--prompt TEXT] [options]",
                "Generates text with the KV cache (TPA models cache only their factors and decode "
                "with FlashTPA). The prompt comes from --prompt or, if absent, standard input.");
    add_model_options(p);
    p.option("prompt", "TEXT", "the prompt (default: read standard input)");
    p.option("max-new-tokens", "N", "tokens to generate", "128");
    p.option("temperature", "X", "sampling temperature; 0 = greedy", "0.8");
    p.option("top-k", "K", "keep the K most likely tokens; 0 = off", "0");
    p.option("top-p", "P", "nucleus sampling mass; 1 = off", "1");
    p.option("seed", "N", "random seed", "0");
    p.option("max-context", "N", "tokens the cache holds (prompt + generated)",
             "the model's block_size");
    p.option("cache", "TYPE",
             "KV cache element type: f32, bf16 or q8 (int8 rows with a scale each)", "f32");
    p.option("weights", "TYPE",
             "weights of the linear layers while generating: f32, bf16 (a rounded copy; half "
             "the bytes read per token), q8 / q4 (blockwise quantized copies, embedding "
             "included; 1.125 / 0.75 bytes per weight), or q8a8 / q4a8 (the same codes times "
             "activations quantized to int8 per block)",
             "f32");
    p.option("tokenizer", "NAME", "gpt2, bytes or a tokenizer file (default: the checkpoint's)");
    p.option("threads", "N", "threads", "all cores");
    p.flag("ignore-eos", "keep going after <|endoftext|>");
    p.flag("print-ids",
           "after the text, print a line 'ids: ID ID ...' with the generated token ids (--json "
           "always has them, as ids and prompt_ids)");
    p.flag("json", "print a JSON summary as the last line");
    p.parse(argc, argv, 0);
    if (p.has("threads"))
        set_num_threads(int(check_thread_count(p.get_int64("threads"), "t6 generate: --threads")));

    SamplingParams sp;
    sp.temperature = float(p.get_double("temperature"));
    sp.top_k = p.get_int("top-k");
    sp.top_p = float(p.get_double("top-p"));
    sp.seed = uint64_t(p.get_int64("seed"));
    sp.validate();
    const int max_new = p.get_int("max-new-tokens");
    if (max_new < 0) fail("t6 generate: --max-new-tokens must be >= 0");
    const CacheType ctype = parse_cache_type(p.get("cache"));
    WeightType wtype = parse_weight_type(p.get("weights"));

    ModelChoice m = resolve_model_choice(p, "generate");
    // A `t6 quantize` checkpoint decodes from its stored codes (--weights may only name them).
    std::shared_ptr<QuantizedWeights> stored;
    std::unique_ptr<Model> model;
    if (m.is_checkpoint && is_quantized_checkpoint(m.source)) {
        QuantizedCheckpoint qc = load_quantized(m.source);
        model = std::move(qc.model);
        stored = qc.weights;
        // The stored codes run with float32 activations, or int8 ones when --weights says q8a8 /
        // q4a8 of the same scheme.
        if (p.has("weights") && !(is_quantized(wtype) && quant_scheme_of(wtype) == stored->scheme))
            fail("t6 generate: ", m.source, " holds ", quant_scheme_name(stored->scheme),
                 " weights, not ", p.get("weights"));
        if (!p.has("weights")) wtype = weight_type_of(stored->scheme);
    } else {
        model = load_or_init_model(m, "generate", sp.seed);
    }
    const ModelConfig& cfg = model->config();
    const int max_ctx = p.has("max-context") ? p.get_int("max-context") : cfg.block_size;
    if (max_ctx <= 0) fail("t6 generate: --max-context must be positive");
    auto tok =
        resolve_tokenizer(p.get("tokenizer"), m.is_checkpoint ? m.source : "", cfg.vocab_size);

    std::string prompt;
    if (p.has("prompt"))
        prompt = p.get("prompt");
    else
        prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    std::vector<int32_t> ids = tok->encode_with_special(prompt);
    if (ids.empty()) fail("t6 generate: the prompt is empty (give --prompt TEXT or text on stdin)");
    if (int(ids.size()) + max_new > max_ctx)
        fail("t6 generate: prompt of ", ids.size(), " tokens + ", max_new,
             " new tokens exceeds the context of ", max_ctx, " tokens (--max-context)");

    const bool a8 = wtype == WeightType::q8a8 || wtype == WeightType::q4a8;
    Decoder dec = stored ? Decoder(*model, 1, max_ctx, ctype, stored, {}, a8)
                         : Decoder(*model, 1, max_ctx, ctype, wtype);
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    GenerationParams gp;
    gp.sampling = sp;
    gp.max_tokens = max_new;
    gp.eos = p.has("ignore-eos") ? -1 : tok->eot();
    // Only ids the tokenizer can print (GPT-2's vocabulary is padded from 50257 to 50304).
    SequenceSampler seq(gp, std::min(cfg.vocab_size, tok->vocab_size()));
    GenerationHooks hooks;
    hooks.on_token = [&](int32_t id) {
        std::string piece = tok->token_bytes(id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        return true;
    };
    const GenerationResult gen = generate(dec, 0, ids, seq, hooks);
    const std::vector<int32_t>& out_ids = gen.ids;
    const int generated = int(out_ids.size());
    const double prefill_s = gen.prefill_s, decode_s = gen.decode_s;
    std::fputs("\n", stdout);
    if (p.has("print-ids")) {
        std::string line = "ids:";
        for (int32_t id : out_ids) line += " " + std::to_string(id);
        std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);  // the text ends before the statistics on stderr begin
    const KVCache& cache = dec.cache();
    const double prompt_tps = ids.size() / prefill_s;
    const double decode_tps = generated > 0 ? generated / decode_s : 0.0;
    std::fprintf(stderr,
                 "[t6 generate] %s | sampling: temperature %g, top-k %d, top-p %g, seed %llu | "
                 "prompt %zu tokens, %.1f tokens/s | decode %d tokens, %.1f "
                 "tokens/s | KV cache %s allocated (%s per token, %s), %s in use | weights %s | "
                 "peak RSS %s\n",
                 cfg.describe().c_str(), double(sp.temperature), sp.top_k, double(sp.top_p),
                 static_cast<unsigned long long>(sp.seed), ids.size(), prompt_tps, generated,
                 decode_tps, human_bytes(double(cache.bytes())).c_str(),
                 human_bytes(double(cache.bytes_per_token())).c_str(),
                 cache_type_name(cache.type()),
                 human_bytes(double(cache.bytes_per_token()) * cache.length(0)).c_str(),
                 weight_type_name(wtype), human_bytes(peak_rss_bytes()).c_str());
    if (p.has("json")) {
        nlohmann::json j = {{"prompt_tokens", ids.size()},
                            {"generated_tokens", generated},
                            {"prompt_tokens_per_s", prompt_tps},
                            {"decode_tokens_per_s", decode_tps},
                            {"kv_cache_bytes", cache.bytes()},
                            {"kv_cache_bytes_per_token", cache.bytes_per_token()},
                            {"kv_cache_type", cache_type_name(cache.type())},
                            {"max_context", max_ctx},
                            {"temperature", sp.temperature},
                            {"top_k", sp.top_k},
                            {"top_p", sp.top_p},
                            {"seed", sp.seed},
                            {"weights", weight_type_name(wtype)},
                            {"peak_rss_bytes", peak_rss_bytes()},
                            {"prompt_ids", ids},
                            {"ids", out_ids}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
