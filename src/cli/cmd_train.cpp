// t6 train: trains a model with the official recipe (AdamW, clipping, warm-up + cosine schedule,
// gradient accumulation) on nanoGPT or llm.c token files, with atomic checkpoints and exact
// resume. See src/train/trainer.h.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_arg.h"
#include "core/error.h"
#include "core/stop_signal.h"
#include "core/threads.h"
#include "model/checkpoint.h"
#include "train/dist.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace t6::cli {

int cmd_train(int argc, char** argv) {
    ArgParser p("train", "[--config FILE] [--preset NAME | --model PATH] [key=value ...]",
                "Trains a model on token files (nanoGPT train.bin/val.bin or llm.c shards) with "
                "AdamW, gradient clipping\nand the official warm-up + cosine learning-rate "
                "schedule; evaluates both splits every eval_interval\nsteps and writes an atomic "
                "checkpoint out_dir/ckpt_<step>/ each time, plus out_dir/metrics.jsonl.\n"
                "key=value arguments set training keys (below) or model keys (t6 info --help).");
    p.option("config", "FILE", "JSON training config: training keys and \"model\"");
    add_model_options(p);
    p.option("resume", "DIR",
             "continue the run in DIR (an out_dir or a checkpoint folder) from its latest "
             "complete checkpoint");
    p.epilog("training keys (key = default):\n" + train_keys_help() +
             "\nexamples:\n"
             "  t6 train --preset tiny-t6 vocab_size=256 data=data/fortunes max_iters=500\n"
             "  t6 train --config configs/demo-fortunes.json\n"
             "  t6 train --resume out/demo max_iters=2000\n"
             "  mpirun -np 2 t6 train --config configs/demo-fortunes.json   (data-parallel: "
             "README)\n\n"
             "One run at a time per out_dir (a lock, out_dir/train.lock). Ctrl-C or SIGTERM: the "
             "step in progress\nfinishes, a checkpoint is written (without an evaluation), and t6 "
             "exits with status 130 (SIGINT)\nor 143 (SIGTERM); a second signal ends it at once. "
             "A run whose loss or evaluation is not\nfinite stops with status 1 before saving "
             "those weights.");
    p.parse(argc, argv, 0);
    // Ctrl-C / SIGTERM: finish the step, write a checkpoint, exit 128 + signal
    // (core/stop_signal.h).
    enable_graceful_stop();
    // Under mpirun/srun: join the group of ranks (train/dist.h); else a single process.
    dist::init();

    std::vector<std::string> overrides;
    for (const auto& a : p.positionals()) {
        if (a.find('=') == std::string::npos)
            fail("t6 train: unexpected argument '", a, "' (expected key=value)");
        overrides.push_back(a);
        // threads=N is checked against the machine here, for new runs and resumes alike.
        if (a.rfind("threads=", 0) == 0) {
            char* end = nullptr;
            errno = 0;
            const long long n = std::strtoll(a.c_str() + 8, &end, 10);
            if (end != a.c_str() + 8 && *end == '\0' && errno == 0)
                check_thread_count(n, "t6 train: threads", true);
        }
    }

    if (p.has("resume")) {
        if (p.has("config") || p.has("preset") || p.has("model"))
            fail(
                "t6 train: --resume continues a run with its saved config; give only key=value "
                "overrides with it");
        auto trainer = Trainer::resume(p.get("resume"), overrides, stdout);
        const TrainResult r = trainer->run();
        return r.stopped_by ? 128 + r.stopped_by : 0;
    }

    TrainSetup setup;
    if (p.has("config")) load_train_config_file(setup, p.get("config"));
    if (p.has("preset") && p.has("model")) fail("t6 train: give --preset or --model, not both");
    if (p.has("preset")) {
        setup.model = preset_config(p.get("preset"));
        setup.model_source = p.get("preset");
        setup.model_given = true;
    } else if (p.has("model")) {
        setup.model = resolve_model_config(p.get("model"));
        setup.model_source = p.get("model");
        setup.model_given = true;
    }
    if (!setup.model_given && setup.train.init_from != "scratch") {
        setup.model = checkpoint_config(setup.train.init_from);
        setup.model_source = setup.train.init_from;
        setup.model_given = true;
    }
    for (const auto& o : overrides) {
        if (!setup.model_given) {
            // Training keys may come first; a model key needs the model chosen.
            TrainSetup probe = setup;
            apply_train_override(probe, o, true);
            if (probe.model.to_json() != setup.model.to_json())
                fail("t6 train: '", o,
                     "' sets a model key, but no model is given (--preset "
                     "NAME, --model PATH or \"model\" in the config file)");
            setup = probe;
            continue;
        }
        apply_train_override(setup, o, true);
    }
    if (!setup.model_given && setup.train.init_from != "scratch") {  // init_from=... given last
        setup.model = checkpoint_config(setup.train.init_from);
        setup.model_given = true;
    }
    if (!setup.model_given)
        fail(
            "t6 train: no model given (--preset NAME, --model PATH, or \"model\" in the config "
            "file)");
    check_thread_count(setup.train.threads, "t6 train: threads", true);
    Trainer trainer(setup, stdout);
    const TrainResult r = trainer.run();
    return r.stopped_by ? 128 + r.stopped_by : 0;
}

}  // namespace t6::cli
