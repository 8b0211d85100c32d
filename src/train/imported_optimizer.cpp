#include "train/imported_optimizer.h"

#include <cmath>

#include "core/error.h"
#include "core/file_util.h"
#include "core/safetensors.h"
#include "train/train_checkpoint.h"

namespace t6 {

namespace {

long long parse_count(const std::string& s, const std::string& where, const char* key) {
    size_t used = 0;
    long long v = -1;
    try {
        v = std::stoll(s, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != s.size() || v < 0) fail(where, ": ", key, " '", s, "' is not a step count");
    return v;
}

}  // namespace

std::string imported_optimizer_path(const std::string& weights_path) {
    const std::string ext = ".safetensors";
    std::string stem = weights_path;
    if (stem.size() >= ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0)
        stem.resize(stem.size() - ext.size());
    return stem + ".adamw.safetensors";
}

std::string load_imported_optimizer(const std::string& weights_path, const Model& model, AdamW& opt,
                                    TrainState& state) {
    const std::string op = imported_optimizer_path(weights_path);
    if (!file_exists(op)) return "";
    SafeTensorsReader w(weights_path);
    const auto& wm = w.metadata();
    auto src = wm.find("source");
    if (src == wm.end() || src->second.rfind("tools/import_official.py", 0) != 0) return "";
    auto it = wm.find("iter_num");
    if (it == wm.end()) fail(weights_path, ": imported with AdamW state but no iter_num");
    const long long iter = parse_count(it->second, weights_path, "iter_num");

    {
        const SafeTensorsReader r(op);
        if (r.metadata().count("format") == 0 || r.metadata().at("format") != "t6-adamw")
            fail(op, ": not a t6-adamw optimizer file");
    }
    read_adamw_file(op, model, opt);
    state.step = iter;
    if (auto b = wm.find("best_val_loss"); b != wm.end()) {
        try {
            const double v = std::stod(b->second);
            if (std::isfinite(v)) state.best_val_loss = v;
        } catch (const std::exception&) {
            fail(weights_path, ": best_val_loss '", b->second, "' is not a number");
        }
    }
    return cat("continuing the official run imported in ", weights_path, ": step ", iter,
               " (iter_num), AdamW state from ", op, " (Adam step ", opt.steps_taken(), ")");
}

}  // namespace t6
