// How every command that takes a model names it: --preset NAME, --model PATH (checkpoint or
// JSON config), or the first positional argument (either); later key=value positionals override
// config keys.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "cli/args.h"
#include "model/config.h"
#include "model/model.h"

namespace t6::cli {

void add_model_options(ArgParser& p);

struct ModelChoice {
    ModelConfig config;
    std::string source;  // the preset name or path
    bool is_checkpoint = false;
};

ModelChoice resolve_model_choice(const ArgParser& p, const std::string& command);

// The chosen model with weights: a checkpoint's, or for a preset/config the official random
// initialisation with `seed` (saying so on stderr, as "t6 <command>: ... random init").
std::unique_ptr<Model> load_or_init_model(const ModelChoice& m, const std::string& command,
                                          uint64_t seed);

}  // namespace t6::cli
