#include "cli/model_arg.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "model/checkpoint.h"

namespace t6::cli {

void add_model_options(ArgParser& p) {
    p.option("preset", "NAME", "model preset <size>-<kind>, e.g. tiny-t6, small-mha");
    p.option("model", "PATH", "checkpoint (.safetensors or folder) or JSON config file");
}

ModelChoice resolve_model_choice(const ArgParser& p, const std::string& command) {
    ModelChoice m;
    std::vector<std::string> overrides;
    std::string positional;
    for (const auto& a : p.positionals()) {
        if (a.find('=') != std::string::npos)
            overrides.push_back(a);
        else if (positional.empty())
            positional = a;
        else
            fail("t6 ", command, ": unexpected argument '", a, "'");
    }
    int given = int(p.has("preset")) + int(p.has("model")) + int(!positional.empty());
    if (given == 0) fail("t6 ", command, ": no model given (use --preset NAME or --model PATH)");
    if (given > 1) fail("t6 ", command, ": give the model once (--preset, --model or a name)");
    if (p.has("preset")) {
        m.source = p.get("preset");
        m.config = preset_config(m.source);
    } else {
        m.source = p.has("model") ? p.get("model") : positional;
        m.config = resolve_model_config(m.source);
        namespace fs = std::filesystem;
        m.is_checkpoint =
            !is_preset(m.source) &&
            (fs::is_directory(m.source) || fs::path(m.source).extension() == ".safetensors");
    }
    for (const auto& o : overrides) apply_override(m.config, o);
    return m;
}

std::unique_ptr<Model> load_or_init_model(const ModelChoice& m, const std::string& command,
                                          uint64_t seed) {
    if (m.is_checkpoint) return load_model(m.source);
    std::fprintf(stderr, "t6 %s: %s has no trained weights; using a random init\n", command.c_str(),
                 m.source.c_str());
    auto model = std::make_unique<Model>(m.config);
    model->init_weights(seed);
    return model;
}

}  // namespace t6::cli
