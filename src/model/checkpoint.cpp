#include "model/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
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
    // Version 1 unless the config uses an HF-layout option (version 2), so checkpoints of the
    // official model kinds stay readable by older t6 builds.
    meta["format_version"] =
        model.config().uses_hf_features() ? std::to_string(kCheckpointFormatVersion) : "1";
    meta["config"] = model.config().to_json().dump();
    if (model.config().tied_embeddings)
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

// Fails naming the tensor and the position of the first NaN or infinite value in a parameter.
void check_finite(const Model& model, const std::string& path) {
    for (const auto& s : model.layout().specs) {
        const float* p = model.params() + s.offset;
        for (size_t i = 0; i < s.numel; i++)
            if (!std::isfinite(p[i]))
                fail(path, ": tensor '", s.name, "' holds ", p[i], " at element ", i,
                     " (weights of a diverged or corrupted run)");
    }
}

}  // namespace

std::string file_checksum_hex(const std::string& path) {
    // Four multiply-xorshift lanes over 64-bit words, then the tail bytes and the length.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, ": cannot open to checksum");
    constexpr size_t kChunk = size_t(1) << 20;  // a multiple of 32
    std::vector<unsigned char> buf(kChunk);
    uint64_t lane[4] = {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull,
                        0xd6e8feb86659fd93ull};
    uint64_t total = 0, tail = 0;
    for (;;) {
        size_t got = 0;
        while (got < kChunk) {
            const ssize_t r = ::read(fd, buf.data() + got, kChunk - got);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                ::close(fd);
                fail(path, ": read failed while checksumming");
            }
            if (r == 0) break;
            got += size_t(r);
        }
        const size_t words = got / 32 * 4;
        for (size_t w = 0; w < words; w += 4)
            for (int k = 0; k < 4; k++) {
                uint64_t x;
                std::memcpy(&x, buf.data() + (w + k) * 8, 8);
                lane[k] = (lane[k] ^ x) * 0x100000001b3ull;
                lane[k] ^= lane[k] >> 29;
            }
        for (size_t i = words * 8; i < got; i++) tail = (tail ^ buf[i]) * 0x100000001b3ull;
        total += got;
        if (got < kChunk) break;
    }
    ::close(fd);
    uint64_t h = total * 0x9e3779b97f4a7c15ull ^ tail;
    for (uint64_t l : lane) h = (h ^ l) * 0xbf58476d1ce4e5b9ull, h ^= h >> 31;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    return hex;
}

void verify_complete_marker(const std::string& dir, const std::vector<std::string>& files,
                            bool checksums) {
    const std::string marker = (fs::path(dir) / "COMPLETE").string();
    if (!file_exists(marker))
        fail(dir, ": checkpoint has no COMPLETE marker (interrupted while being written)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file_text(marker));
    } catch (const nlohmann::json::exception&) {
        fail(marker, ": not valid JSON (truncated or corrupted?)");
    }
    if (!j.is_object() || !j.contains("files") || !j["files"].is_object())
        fail(marker, ": malformed checkpoint marker");
    for (const auto& name : files) {
        const std::string p = (fs::path(dir) / name).string();
        if (!file_exists(p)) fail(p, ": missing from a checkpoint marked COMPLETE");
        if (!j["files"].contains(name) || !j["files"][name].is_number_unsigned())
            fail(marker, ": no size recorded for ", name);
        const auto want = j["files"][name].get<uintmax_t>();
        const auto have = fs::file_size(p);
        if (have != want)
            fail(p, ": size ", have, " bytes, but the checkpoint recorded ", want,
                 " (truncated or corrupted)");
        // Markers written before checksums existed have none: sizes only.
        if (checksums && j.contains("checksums") && j["checksums"].is_object() &&
            j["checksums"].contains(name) && j["checksums"][name] != file_checksum_hex(p))
            fail(p, ": checksum differs from the one recorded in ", marker, " (corrupted)");
    }
}

void load_weights(Model& model, const std::string& path, bool verify) {
    const fs::path dir = fs::path(path).parent_path();
    if (verify && fs::path(path).filename() == "model.safetensors" &&
        file_exists((dir / "COMPLETE").string()))
        verify_complete_marker(dir.empty() ? "." : dir.string(), {"model.safetensors"}, true);
    SafeTensorsReader r(path);
    check_format_version(r);
    const ParameterLayout& L = model.layout();
    const bool tied = model.config().tied_embeddings;  // else lm_head.weight is a parameter
    for (const auto& t : r.tensors()) {
        if (tied && t.name == kTiedAlias) continue;
        if (!L.find(t.name))
            fail(path, ": tensor '", t.name, "' is not a parameter of this model (",
                 model.config().describe(), ")");
    }
    for (const auto& s : L.specs) {
        if (!r.has(s.name)) fail(path, ": missing tensor '", s.name, "'");
        r.read_f32(s.name, model.params() + s.offset, s.shape);
    }
    if (tied && r.has(kTiedAlias)) {
        const ParamSpec& wte = L.at(kEmbeddingName);
        std::vector<float> head = r.read_f32(kTiedAlias);
        if (r.info(kTiedAlias).shape != wte.shape ||
            std::memcmp(head.data(), model.params() + wte.offset, wte.numel * sizeof(float)) != 0)
            fail(path,
                 ": lm_head.weight differs from transformer.wte.weight, but t6 models tie "
                 "them");
    }
    check_finite(model, path);
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
