#include "model/quantize_io.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"

namespace t6 {

namespace {

// Rows [r0, r0 + rows) of a matrix's storage, for one covered tensor.
struct PartSlice {
    std::string name;
    int r0 = 0, rows = 0;
};

std::vector<PartSlice> part_slices(const QuantTarget& t, const ParameterLayout& L) {
    std::vector<PartSlice> v;
    int r = 0;
    for (const auto& name : t.parts) {
        const int rows = int(L.at(name).shape[0]);
        v.push_back({name, r, rows});
        r += rows;
    }
    return v;
}

}  // namespace

void save_quantized(const std::string& path, const Model& model, const QuantizedWeights& q,
                    const std::map<std::string, std::string>& extra_metadata) {
    const ParameterLayout& L = model.layout();
    std::set<std::string> quantized;
    std::vector<TensorToWrite> tensors;
    for (size_t i = 0; i < q.targets.size(); i++) {
        const QuantMatrix& m = q.mats[i];
        const int64_t nb = m.blocks_per_row(), cb = m.code_bytes();
        for (const PartSlice& p : part_slices(q.targets[i], L)) {
            quantized.insert(p.name);
            const size_t b0 = size_t(p.r0) * nb;
            tensors.push_back(
                {p.name + ".qcodes", DType::U8, {p.rows, nb * cb}, m.codes.data() + b0 * cb});
            tensors.push_back({p.name + ".qscale", DType::F32, {p.rows, nb}, m.scale.data() + b0});
            if (m.scheme == QuantScheme::q4)
                tensors.push_back({p.name + ".qmin", DType::F32, {p.rows, nb}, m.min.data() + b0});
        }
    }
    for (const auto& s : L.specs)
        if (!quantized.count(s.name))
            tensors.push_back({s.name, DType::F32, s.shape, model.params() + s.offset});
    std::map<std::string, std::string> meta = extra_metadata;
    meta["format"] = "t6";
    meta["format_version"] = std::to_string(kCheckpointFormatVersion);
    meta["config"] = model.config().to_json().dump();
    meta["quantization"] = nlohmann::json{
        {"version", kQuantFormatVersion},
        {"scheme", quant_scheme_name(q.scheme)},
        {"block_size",
         kQuantBlock}}.dump();
    write_safetensors(path, tensors, meta);
}

bool is_quantized_checkpoint(const std::string& path) {
    const auto meta = checkpoint_metadata(path);
    return meta.count("quantization") > 0;
}

QuantizedCheckpoint load_quantized(const std::string& ckpt) {
    const std::string path = checkpoint_weights_path(ckpt);
    const ModelConfig cfg = checkpoint_config(path);
    SafeTensorsReader r(path);
    auto it = r.metadata().find("quantization");
    if (it == r.metadata().end())
        fail(path, ": not a quantized checkpoint (no 'quantization' metadata)");
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (!j.is_object()) fail(path, ": the 'quantization' metadata is not a JSON object");
    auto get_int = [&](const char* key) {
        if (!j.contains(key) || !j[key].is_number_integer())
            fail(path, ": quantization metadata has no integer '", key, "'");
        return j[key].get<long>();
    };
    const long version = get_int("version");
    if (version < 1 || version > kQuantFormatVersion)
        fail(path, ": quantization format version ", version, " is not one this t6 reads (1 to ",
             kQuantFormatVersion, ")");
    if (!j.contains("scheme") || !j["scheme"].is_string())
        fail(path, ": quantization metadata has no string 'scheme'");
    const QuantScheme scheme = parse_quant_scheme(j["scheme"].get<std::string>(), path);
    const long block = get_int("block_size");
    if (block != kQuantBlock)
        fail(path, ": quantization block size ", block, " is not supported (t6 uses ", kQuantBlock,
             ")");

    QuantizedCheckpoint out;
    out.model = std::make_unique<Model>(cfg);
    Model& model = *out.model;
    const ParameterLayout& L = model.layout();
    auto q = std::make_shared<QuantizedWeights>();
    q->scheme = scheme;
    q->targets = quant_targets(cfg, L);
    q->mats.resize(q->targets.size());
    std::set<std::string> expected;
    for (size_t i = 0; i < q->targets.size(); i++) {
        const QuantTarget& t = q->targets[i];
        QuantMatrix& m = q->mats[i];
        if (t.core && version < 2) {
            // Version 1 kept MLA's up-projections float32 (the original weights, as `t6 quantize`
            // read them): quantized here, they get the codes a version 2 file stores.
            const ParamSpec& s = L.at(t.name);
            expected.insert(t.name);
            if (!r.has(t.name))
                fail(path, ": missing tensor '", t.name, "' (version 1 stores it as float32)");
            r.read_f32(t.name, model.params() + s.offset, s.shape);
            try {
                quantize_matrix(m, model.params() + s.offset, t.rows, t.cols, scheme);
            } catch (const Error& e) {  // a non-finite weight: name the file and the tensor
                fail(path, ": tensor '", t.name, "': ", e.what());
            }
            continue;
        }
        m.allocate(scheme, t.rows, t.cols);
        const int64_t nb = m.blocks_per_row(), cb = m.code_bytes();
        for (const PartSlice& p : part_slices(t, L)) {
            const std::string cn = p.name + ".qcodes", sn = p.name + ".qscale",
                              mn = p.name + ".qmin";
            expected.insert(cn);
            expected.insert(sn);
            if (scheme == QuantScheme::q4) expected.insert(mn);
            const TensorInfo& ci = r.info(cn);
            if (ci.dtype != DType::U8 || ci.shape.size() != 2 || ci.shape[0] != p.rows)
                fail(path, ": tensor '", cn, "' must be U8 [", p.rows, ", ", nb * cb, "], not ",
                     dtype_name(ci.dtype), " ", shape_str(ci.shape));
            if (ci.shape[1] % cb != 0)
                fail(path, ": tensor '", cn, "' rows of ", ci.shape[1], " bytes are not whole ",
                     quant_scheme_name(scheme), " blocks of ", block, " weights (", cb,
                     " bytes): the block size does not divide a row");
            if (ci.shape[1] != nb * cb)
                fail(path, ": tensor '", cn, "' has ", ci.shape[1] / cb, " blocks per row, but ",
                     t.cols, " weights need ", nb);
            const size_t b0 = size_t(p.r0) * nb, nblk = size_t(p.rows) * nb;
            std::memcpy(m.codes.data() + b0 * cb, r.raw(cn), nblk * cb);
            auto read_scales = [&](const std::string& name, float* dst) {
                const TensorInfo& si = r.info(name);
                if (si.dtype != DType::F32 || si.shape != std::vector<int64_t>{p.rows, nb})
                    fail(path, ": tensor '", name, "' must be F32 [", p.rows, ", ", nb, "], not ",
                         dtype_name(si.dtype), " ", shape_str(si.shape));
                std::memcpy(dst, r.raw(name), nblk * sizeof(float));
            };
            read_scales(sn, m.scale.data() + b0);
            if (scheme == QuantScheme::q4) read_scales(mn, m.min.data() + b0);
            for (size_t b = b0; b < b0 + nblk; b++) {
                const size_t row = (b - b0) / nb, col = (b - b0) % nb;
                if (!std::isfinite(m.scale[b]) || m.scale[b] < 0.0f)
                    fail(path, ": tensor '", sn, "' block [", row, ", ", col, "] has scale ",
                         m.scale[b], " (damaged: a scale is finite and >= 0)");
                if (scheme == QuantScheme::q4 && !std::isfinite(m.min[b]))
                    fail(path, ": tensor '", mn, "' block [", row, ", ", col, "] has minimum ",
                         m.min[b], " (damaged)");
                if (scheme == QuantScheme::q8)
                    for (int k = 0; k < cb; k++)
                        if (m.codes[b * cb + k] == 0x80)
                            fail(path, ": tensor '", cn, "' block [", row, ", ", col,
                                 "] holds code -128 (damaged: q8 codes are in [-127, 127])");
            }
        }
    }
    // Every other parameter as float32; nothing unknown.
    std::set<std::string> quantized_names;
    for (const auto& t : q->targets)
        for (const auto& n : t.parts) quantized_names.insert(n);
    for (const auto& s : L.specs)
        if (!quantized_names.count(s.name)) {
            expected.insert(s.name);
            if (!r.has(s.name)) fail(path, ": missing tensor '", s.name, "'");
            r.read_f32(s.name, model.params() + s.offset, s.shape);
        }
    for (const auto& t : r.tensors())
        if (!expected.count(t.name))
            fail(path, ": tensor '", t.name, "' is not part of a ", quant_scheme_name(scheme),
                 " checkpoint of this model (", cfg.describe(), ")");
    apply_dequantized(model, *q);
    out.weights = std::move(q);
    return out;
}

}  // namespace t6
