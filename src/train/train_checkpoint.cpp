#include "train/train_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace t6 {

namespace {

const char* kModelFile = "model.safetensors";
const char* kOptimizerFile = "optimizer.safetensors";
const char* kStateFile = "state.json";
const char* kCompleteFile = "COMPLETE";
const char* kPrefix = "ckpt_";

json number_or_null(double v) {
    return std::isfinite(v) ? json(v) : json(nullptr);
}
double number_or(const json& j, double fallback) {
    return j.is_number() ? j.get<double>() : fallback;
}

// fsync a folder so a rename inside it survives a crash.
void fsync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // best effort: some file systems refuse to open folders
    (void)::fsync(fd);
    ::close(fd);
}

// The step of a folder named ckpt_<digits>, or -1.
long long step_of(const std::string& name) {
    if (name.rfind(kPrefix, 0) != 0 || name.size() == std::string(kPrefix).size()) return -1;
    long long s = 0;
    for (size_t i = std::string(kPrefix).size(); i < name.size(); i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        if (s > (1ll << 50)) return -1;
        s = s * 10 + (name[i] - '0');
    }
    return s;
}

json read_json_file(const std::string& path) {
    const std::string text = read_file_text(path);
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        fail(path, ": not valid JSON (byte ", e.byte, "; truncated or corrupted?)");
    }
}

// Checks the COMPLETE marker of a checkpoint folder against its three files: sizes always,
// checksums when `checksums` (they read every byte).
void verify_complete(const std::string& dir, bool checksums) {
    verify_complete_marker(dir, {kModelFile, kOptimizerFile, kStateFile}, checksums);
}

// Fails if a weight or optimizer moment is NaN or infinite: such a checkpoint would only fail
// again on resume.
void check_finite(const Model& model, const AdamW& opt, long long step) {
    auto bad = [](const float* p, size_t n) {
        for (size_t i = 0; i < n; i++)
            if (!std::isfinite(p[i])) return true;
        return false;
    };
    const size_t n = model.num_params();
    if (bad(model.params(), n))
        fail("step ", step,
             ": the weights hold NaN or infinite values (the run diverged); no checkpoint "
             "written (lower learning_rate or check the data)");
    if (opt.size() == n && (bad(opt.exp_avg(), n) || bad(opt.exp_avg_sq(), n)))
        fail("step ", step,
             ": the optimizer moments hold NaN or infinite values (the run diverged); no "
             "checkpoint written (lower learning_rate or check the data)");
}

bool is_temporary(const std::string& name) {
    return name.rfind(".tmp_" + std::string(kPrefix), 0) == 0;
}

}  // namespace

std::string checkpoint_dir_name(long long step) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%06lld", kPrefix, step);
    return buf;
}

json TrainState::to_json() const {
    return {{"format", "t6-train-state"},
            {"format_version", kTrainStateVersion},
            {"step", step},
            {"tokens", tokens},
            {"samplers",
             {{"train", train_sampler.to_json()},
              {"eval_train", eval_train_sampler.to_json()},
              {"eval_val", eval_val_sampler.to_json()}}},
            {"best_val_loss", number_or_null(best_val_loss)},
            {"best_step", best_step},
            {"last_val_loss", number_or_null(last_val_loss)},
            {"last_train_loss", number_or_null(last_train_loss)},
            {"elapsed_s", elapsed_s},
            {"threads", threads},
            {"ranks", ranks},
            {"train_config", config.to_json()},
            {"model_config", model.to_json()}};
}

TrainState TrainState::from_json(const json& j, const std::string& where) {
    TrainState s;
    try {
        if (!j.is_object() || j.value("format", "") != "t6-train-state")
            fail(where, ": not a t6 training state file");
        const int v = j.at("format_version").get<int>();
        if (v > kTrainStateVersion)
            fail(where, ": training state format version ", v, " is newer than this t6 reads (",
                 kTrainStateVersion, ")");
        s.step = j.at("step").get<long long>();
        s.tokens = j.at("tokens").get<long long>();
        const json& sm = j.at("samplers");
        s.train_sampler = SamplerState::from_json(sm.at("train"), where);
        s.eval_train_sampler = SamplerState::from_json(sm.at("eval_train"), where);
        s.eval_val_sampler = SamplerState::from_json(sm.at("eval_val"), where);
        s.best_val_loss = number_or(j.at("best_val_loss"), std::numeric_limits<double>::infinity());
        s.best_step = j.at("best_step").get<long long>();
        s.last_val_loss = number_or(j.at("last_val_loss"), std::nan(""));
        s.last_train_loss = number_or(j.at("last_train_loss"), std::nan(""));
        s.elapsed_s = j.at("elapsed_s").get<double>();
        s.threads = j.at("threads").get<int>();
        s.ranks = j.value("ranks", 1);  // absent before data parallelism
        s.config = train_config_from_json(j.at("train_config"), where + ": train_config");
        s.model = config_from_json(j.at("model_config"), where + ": model_config");
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(where, ": malformed training state (", e.what(), ")");
    }
    if (s.step < 0) fail(where, ": negative step");
    return s;
}

std::string save_train_checkpoint(const std::string& out_dir, const Model& model, const AdamW& opt,
                                  const TrainState& state,
                                  const std::map<std::string, std::string>& weight_metadata) {
    check_finite(model, opt, state.step);
    fs::create_directories(out_dir);
    const std::string name = checkpoint_dir_name(state.step);
    const fs::path final_dir = fs::path(out_dir) / name;
    const fs::path tmp = fs::path(out_dir) / (".tmp_" + name + "." + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (!fs::create_directory(tmp, ec) || ec)
        fail(tmp.string(), ": cannot create checkpoint folder: ", ec.message());

    // On any failure (a full disk, an I/O error) nothing half-written stays behind: the
    // temporary folder, or the renamed folder that did not get its marker, is removed.
    bool renamed = false;
    try {
        // Weights and optimizer moments (each written to a temporary file, fsynced, renamed).
        std::map<std::string, std::string> meta = weight_metadata;
        meta["step"] = std::to_string(state.step);
        save_weights((tmp / kModelFile).string(), model, meta);
        std::vector<TensorToWrite> moments;
        for (const auto& s : model.layout().specs) {
            moments.push_back({"exp_avg." + s.name, DType::F32, s.shape, opt.exp_avg() + s.offset});
            moments.push_back(
                {"exp_avg_sq." + s.name, DType::F32, s.shape, opt.exp_avg_sq() + s.offset});
        }
        write_safetensors((tmp / kOptimizerFile).string(), moments,
                          {{"format", "t6-adamw"},
                           {"format_version", "1"},
                           {"adam_step", std::to_string(opt.steps_taken())}});
        write_file_atomic((tmp / kStateFile).string(), state.to_json().dump(2) + "\n");
        fsync_dir(tmp.string());

        // Into place. A folder of that name left by an interrupted run (or an older run resumed
        // from an earlier step) is replaced.
        fs::remove_all(final_dir, ec);
        fs::rename(tmp, final_dir, ec);
        renamed = !ec;
        if (ec) fail(final_dir.string(), ": cannot rename checkpoint into place: ", ec.message());
        fsync_dir(out_dir);

        // The marker, last.
        json files = json::object(), sums = json::object();
        for (const char* f : {kModelFile, kOptimizerFile, kStateFile}) {
            files[f] = uintmax_t(fs::file_size(final_dir / f));
            sums[f] = file_checksum_hex((final_dir / f).string());
        }
        json marker = {{"step", state.step}, {"files", files}, {"checksums", sums}};
        write_file_atomic((final_dir / kCompleteFile).string(), marker.dump() + "\n");
    } catch (...) {
        fs::remove_all(renamed ? final_dir : tmp, ec);
        throw;
    }
    return final_dir.string();
}

TrainState read_train_state(const std::string& ckpt_dir) {
    verify_complete(ckpt_dir, false);
    const std::string p = (fs::path(ckpt_dir) / kStateFile).string();
    return TrainState::from_json(read_json_file(p), p);
}

void read_adamw_file(const std::string& op, const Model& model, AdamW& opt) {
    SafeTensorsReader r(op);
    const size_t expected = 2 * model.layout().specs.size();
    if (r.tensors().size() != expected)
        fail(op, ": holds ", r.tensors().size(), " tensors, expected ", expected,
             " (exp_avg and exp_avg_sq per parameter)");
    for (const auto& s : model.layout().specs) {
        r.read_f32("exp_avg." + s.name, opt.exp_avg() + s.offset, s.shape);
        r.read_f32("exp_avg_sq." + s.name, opt.exp_avg_sq() + s.offset, s.shape);
    }
    auto it = r.metadata().find("adam_step");
    if (it == r.metadata().end()) fail(op, ": no adam_step in the metadata");
    long long step = -1;
    try {
        size_t used = 0;
        step = std::stoll(it->second, &used);
        if (used != it->second.size()) step = -1;
    } catch (const std::exception&) {
    }
    if (step < 0) fail(op, ": adam_step '", it->second, "' is not a count");
    opt.set_steps_taken(step);
}

void load_train_checkpoint(const std::string& ckpt_dir, Model& model, AdamW& opt) {
    verify_complete(ckpt_dir, true);
    load_weights(model, (fs::path(ckpt_dir) / kModelFile).string(), /*verify=*/false);
    read_adamw_file((fs::path(ckpt_dir) / kOptimizerFile).string(), model, opt);
}

std::vector<CheckpointEntry> list_complete_checkpoints(const std::string& out_dir) {
    std::vector<CheckpointEntry> v;
    if (!fs::is_directory(out_dir)) return v;
    for (const auto& e : fs::directory_iterator(out_dir)) {
        if (!e.is_directory()) continue;
        const long long s = step_of(e.path().filename().string());
        if (s >= 0 && file_exists((e.path() / kCompleteFile).string()))
            v.push_back({s, e.path().string()});
    }
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
    return v;
}

bool is_checkpoint_dir(const std::string& dir) {
    return file_exists((fs::path(dir) / kCompleteFile).string()) ||
           file_exists((fs::path(dir) / kStateFile).string());
}

void prune_checkpoints(const std::string& out_dir, int keep_last, long long best_step) {
    const auto complete = list_complete_checkpoints(out_dir);
    std::error_code ec;
    const size_t n = complete.size();
    for (size_t i = 0; i + size_t(keep_last) < n; i++)
        if (complete[i].step != best_step) fs::remove_all(complete[i].path, ec);
    if (complete.empty()) return;
    const long long newest = complete.back().step;
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
        if (!e.is_directory()) continue;
        const std::string name = e.path().filename().string();
        const long long s = step_of(name);
        const bool stale_incomplete =
            s >= 0 && s < newest && !file_exists((e.path() / kCompleteFile).string());
        const bool stale_tmp =
            is_temporary(name) && name.find("." + std::to_string(::getpid())) == std::string::npos;
        if (stale_incomplete || stale_tmp) fs::remove_all(e.path(), ec);
    }
}

}  // namespace t6

namespace t6 {

int remove_temporary_checkpoints(const std::string& out_dir) {
    int n = 0;
    std::error_code ec;
    if (!fs::is_directory(out_dir, ec)) return 0;
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
        if (!e.is_directory(ec) || !is_temporary(e.path().filename().string())) continue;
        fs::remove_all(e.path(), ec);
        n += !ec;
    }
    return n;
}

}  // namespace t6
