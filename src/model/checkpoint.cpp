#include "model/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace t6 {

void save_weights(const std::string& path, const Model& model,
                  const std::map<std::string, std::string>& extra_metadata) {
    std::vector<TensorToWrite> tensors;
    for (const auto& s : model.layout().specs)
        tensors.push_back({s.name, DType::F32, s.shape, model.params() + s.offset});
    std::map<std::string, std::string> meta = extra_metadata;
    meta["format"] = "t6";
    meta["format_version"] = std::to_string(kCheckpointFormatVersion);
    meta["config"] = model.config().to_json().dump();
    meta["tied"] = std::string(kEmbeddingName) + "," + kTiedAlias;
    write_safetensors(path, tensors, meta);
}

namespace {

void check_format_version(const SafeTensorsReader& r) {
    auto it = r.metadata().find("format_version");
    if (it == r.metadata().end()) return;  // not written by t6 (an official state_dict)
    int v = 0;
    try {
        v = std::stoi(it->second);
    } catch (...) {
        fail(r.path(), ": format_version '", it->second, "' is not a number");
    }
    if (v > kCheckpointFormatVersion)
        fail(r.path(), ": checkpoint format version ", v, " is newer than this t6 reads (",
             kCheckpointFormatVersion, "); upgrade t6");
    if (v < 1) fail(r.path(), ": checkpoint format version ", v, " is not a t6 version");
}

}  // namespace

void load_weights(Model& model, const std::string& path) {
    SafeTensorsReader r(path);
    check_format_version(r);
    const ParameterLayout& L = model.layout();
    for (const auto& t : r.tensors()) {
        if (t.name == kTiedAlias) continue;
        if (!L.find(t.name))
            fail(path, ": tensor '", t.name, "' is not a parameter of this model (",
                 model.config().describe(), ")");
    }
    for (const auto& s : L.specs) {
        if (!r.has(s.name)) fail(path, ": missing tensor '", s.name, "'");
        r.read_f32(s.name, model.params() + s.offset, s.shape);
    }
    if (r.has(kTiedAlias)) {
        const ParamSpec& wte = L.at(kEmbeddingName);
        std::vector<float> head = r.read_f32(kTiedAlias);
        if (r.info(kTiedAlias).shape != wte.shape ||
            std::memcmp(head.data(), model.params() + wte.offset, wte.numel * sizeof(float)) != 0)
            fail(path,
                 ": lm_head.weight differs from transformer.wte.weight, but t6 models tie "
                 "them");
    }
}

std::string checkpoint_weights_path(const std::string& path) {
    if (fs::is_directory(path)) {
        for (const char* name : {"model.safetensors", "weights.safetensors"})
            if (fs::exists(fs::path(path) / name)) return (fs::path(path) / name).string();
        for (const char* name : {"pytorch_model.bin", "ckpt.pt"})
            if (fs::exists(fs::path(path) / name))
                fail(path, ": an official training output (", name,
                     "), not a t6 checkpoint: convert it with /usr/bin/python3 "
                     "tools/import_official.py ",
                     path, " -o MODEL.safetensors");
        fail(path, ": folder has no model.safetensors (not a t6 checkpoint)");
    }
    if (!fs::exists(path)) fail(path, ": no such file or folder");
    const std::string base = fs::path(path).filename().string();
    if (base == "pytorch_model.bin" || base == "ckpt.pt" || base == "optimizer.pt")
        fail(path, ": a file of the official training code, not a t6 checkpoint: convert its ",
             "folder with /usr/bin/python3 tools/import_official.py DIR -o MODEL.safetensors");
    return path;
}

std::map<std::string, std::string> checkpoint_metadata(const std::string& path) {
    return SafeTensorsReader(checkpoint_weights_path(path)).metadata();
}

ModelConfig checkpoint_config(const std::string& path) {
    std::string wpath = checkpoint_weights_path(path);
    SafeTensorsReader r(wpath);
    check_format_version(r);
    auto it = r.metadata().find("config");
    if (it != r.metadata().end()) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(it->second);
        } catch (const nlohmann::json::parse_error&) {
            fail(wpath, ": the 'config' metadata is not valid JSON");
        }
        return config_from_json(j, wpath + " (config metadata)");
    }
    fs::path cfg = fs::path(wpath).parent_path() / "config.json";
    if (!fs::exists(cfg)) fail(wpath, ": no t6 config metadata and no config.json beside it");
    return load_config_file(cfg.string());
}

std::unique_ptr<Model> load_model(const std::string& path) {
    auto model = std::make_unique<Model>(checkpoint_config(path));
    load_weights(*model, checkpoint_weights_path(path));
    return model;
}

ModelConfig resolve_model_config(const std::string& name_or_path) {
    if (is_preset(name_or_path)) return preset_config(name_or_path);
    if (!fs::exists(name_or_path)) {
        // Neither a file nor a preset: say which presets exist.
        if (name_or_path.find('/') == std::string::npos &&
            name_or_path.find('.') == std::string::npos)
            preset_config(name_or_path);  // fails with the list of sizes and kinds
        fail(name_or_path, ": no such file, folder or preset");
    }
    if (fs::is_directory(name_or_path) ||
        (name_or_path.size() > 12 &&
         name_or_path.compare(name_or_path.size() - 12, 12, ".safetensors") == 0))
        return checkpoint_config(name_or_path);
    return load_config_file(name_or_path);
}

}  // namespace t6
