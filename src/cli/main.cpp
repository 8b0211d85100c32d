// t6: the command-line entry point. `t6 <command> --help` documents each command.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fatal.h"
#include "core/simd.h"
#include "core/stop_signal.h"
#include "core/threads.h"
#include "train/dist.h"  // finalize() of a data-parallel run

namespace {

struct Command {
    const char* name;
    int (*run)(int, char**);
    const char* summary;
};

const Command kCommands[] = {
    {"info", t6::cli::cmd_info, "parameters, FLOPs and KV cache size of a model"},
    {"bench", t6::cli::cmd_bench, "benchmarks (step: forward+backward tokens/s and MFU)"},
    {"generate", t6::cli::cmd_generate, "generate text with the KV cache (FlashTPA for T6)"},
    {"kv", t6::cli::cmd_kv, "KV cache per token and the longest context a budget holds"},
    {"quantize", t6::cli::cmd_quantize, "q8/q4 blockwise-quantized copy of a checkpoint"},
    {"import", t6::cli::cmd_import, "Hugging Face LLaMA-layout model folder -> t6 checkpoint"},
    {"demo", t6::cli::cmd_demo, "presets and a timed forward+backward pass (no data needed)"},
    {"prepare", t6::cli::cmd_prepare, "text/JSONL -> tokenized train/val files + meta.json"},
    {"tokenize", t6::cli::cmd_tokenize, "text -> token ids, ids -> text; --bench speed"},
    {"tokenizer", t6::cli::cmd_tokenizer, "train a BPE or char tokenizer on a corpus; info"},
    {"train", t6::cli::cmd_train, "train a model (AdamW, official schedule, checkpoints, resume)"},
    {"eval", t6::cli::cmd_eval, "perplexity and zero-/few-shot multiple choice (lm-eval scoring)"},
    {"serve", t6::cli::cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
    {"study", t6::cli::cmd_study, "every attention kind at equal parameters: train, eval, report"},
    {"convert", t6::cli::cmd_convert, "MHA/GQA checkpoint -> TPA (T6): fitted factors, report"},
};

void print_usage(FILE* f) {
    std::fprintf(f, "usage: t6 <command> [options]   (t6 <command> --help for details)\n\n");
    std::fprintf(f, "t6 %s: Tensor Product Attention (T6) and its baselines in C++.\n\n",
                 T6_VERSION);
    std::fprintf(f, "commands:\n");
    for (const auto& c : kCommands) std::fprintf(f, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
    // The OpenMP pool spins briefly and then sleeps when idle (core/threads.h), except in
    // benchmarks: they keep the runtime's spin-then-sleep default (a quiet machine's best) and
    // print the policy in force.
    if (!(argc >= 2 && std::string(argv[1]) == "bench")) t6::ensure_wait_policy(argv);
    // SIGINT/SIGTERM go to one watcher thread, never to a thread inside a GEMM
    // (core/stop_signal.h); after the re-exec above, whose image would inherit the block.
    t6::route_stop_signals();
    if (argc < 2) {
        print_usage(stderr);
        return 1;
    }
    std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        print_usage(stdout);
        return 0;
    }
    if (cmd == "--version") {
        std::printf("t6 %s\n", T6_VERSION);
        return 0;
    }
    for (const auto& c : kCommands) {
        if (cmd != c.name) continue;
        // Errors print "t6: error: <message>" (core/fatal.h); in a data-parallel run the handler
        // train/dist.h installs puts the rank in front and stops the whole job.
        int rc = 1;
        try {
            t6::simd_check_env();  // a bad T6_SIMD or T6_BF16_DOT, whatever the command
            rc = c.run(argc - 2, argv + 2);
        } catch (const t6::cli::HelpShown&) {
            rc = 0;
        } catch (const t6::Error& e) {
            t6::report_fatal(e.what());
        } catch (const std::bad_alloc&) {
            t6::report_fatal("out of memory");
        } catch (const std::exception& e) {
            t6::report_fatal(e.what());
        }
        t6::dist::finalize();
        return rc;
    }
    t6::report_fatal("unknown command '" + cmd + "' (see t6 --help)");
    return 1;  // bad input, as every other error (README)
}
