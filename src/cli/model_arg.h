// How every command that takes a model names it: --preset NAME, --model PATH (checkpoint or
// JSON config), or the first positional argument (either); later key=value positionals override
// config keys.
#pragma once
#include <string>

#include "cli/args.h"
#include "model/config.h"

namespace t6::cli {

void add_model_options(ArgParser& p);

struct ModelChoice {
    ModelConfig config;
    std::string source;  // the preset name or path
    bool is_checkpoint = false;
};

ModelChoice resolve_model_choice(const ArgParser& p, const std::string& command);

}  // namespace t6::cli
