#include "model/hf_import.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file_util.h"
#include "core/safetensors.h"
#include "text/hf_tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace t6 {

namespace {

json read_json(const std::string& path) {
    if (!file_exists(path)) fail(path, ": not found");
    try {
        return json::parse(read_file_text(path));
    } catch (const json::exception&) {
        fail(path, ": not valid JSON");
    }
}

int int_key(const json& j, const std::string& where, const char* key, int def = -1) {
    if (!j.contains(key) || j[key].is_null()) {
        if (def < 0) fail(where, ": missing '", key, "'");
        return def;
    }
    if (!j[key].is_number_integer() || j[key].get<long long>() <= 0 ||
        j[key].get<long long>() > (1LL << 30))
        fail(where, ": '", key, "' must be a positive integer, got ", j[key].dump());
    return j[key].get<int>();
}

double num_key(const json& j, const std::string& where, const char* key, double def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_number()) fail(where, ": '", key, "' must be a number, got ", j[key].dump());
    return j[key].get<double>();
}

bool bool_key(const json& j, const std::string& where, const char* key, bool def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) fail(where, ": '", key, "' must be true or false");
    return j[key].get<bool>();
}

const std::vector<std::string> kArchitectures = {"LlamaForCausalLM", "MistralForCausalLM",
                                                 "Qwen2ForCausalLM"};

}  // namespace

ModelConfig hf_config_to_t6(const json& j, const std::string& where, int block_size,
                            std::string* architecture) {
    if (!j.is_object()) fail(where, ": not a JSON object");
    if (!j.contains("architectures") || !j["architectures"].is_array() ||
        j["architectures"].size() != 1 || !j["architectures"][0].is_string())
        fail(where, ": 'architectures' must list one architecture");
    const std::string arch = j["architectures"][0];
    if (std::find(kArchitectures.begin(), kArchitectures.end(), arch) == kArchitectures.end())
        fail(where, ": architecture '", arch,
             "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
    if (architecture) *architecture = arch;
    const bool qwen = arch == "Qwen2ForCausalLM";
    if (j.contains("hidden_act") && j["hidden_act"] != "silu")
        fail(where, ": hidden_act ", j["hidden_act"].dump(), " is not supported (silu only)");
    if (bool_key(j, where, "attention_bias", false))
        fail(where, ": attention_bias = true (biases on q/k/v/o) is not supported");
    if (bool_key(j, where, "mlp_bias", false)) fail(where, ": mlp_bias = true is not supported");
    ModelConfig c;
    c.n_embd = int_key(j, where, "hidden_size");
    c.mlp_hidden = int_key(j, where, "intermediate_size");
    c.n_layer = int_key(j, where, "num_hidden_layers");
    c.n_head = int_key(j, where, "num_attention_heads");
    const int kv = int_key(j, where, "num_key_value_heads", c.n_head);
    if (c.n_head % kv != 0)
        fail(where, ": num_attention_heads ", c.n_head,
             " is not a multiple of num_key_value_heads ", kv);
    c.attention = kv == c.n_head ? AttentionKind::mha
                  : kv == 1      ? AttentionKind::mqa
                                 : AttentionKind::gqa;
    c.n_kv_head = kv == c.n_head ? 0 : kv;
    if (c.n_embd % c.n_head != 0 && !j.contains("head_dim"))
        fail(where, ": hidden_size is not a multiple of num_attention_heads and no head_dim");
    c.head_dim = int_key(j, where, "head_dim", c.n_embd / c.n_head);
    c.vocab_size = int_key(j, where, "vocab_size");
    c.block_size = int_key(j, where, "max_position_embeddings", 2048);
    // Mistral's sliding window: attention within the window is plain causal attention, so a
    // context no longer than the window is exact.
    if (arch == "MistralForCausalLM" && j.contains("sliding_window") &&
        !j["sliding_window"].is_null())
        c.block_size = std::min(c.block_size, int_key(j, where, "sliding_window"));
    if (qwen && bool_key(j, where, "use_sliding_window", false))
        fail(where, ": use_sliding_window = true is not supported");
    if (block_size > 0) c.block_size = block_size;
    c.norm_eps = float(num_key(j, where, "rms_norm_eps", 1e-6));
    c.rope_theta = float(num_key(j, where, "rope_theta", 10000.0));
    c.norm_weights = true;
    c.rope_hf = true;
    c.qkv_bias = qwen;
    // transformers' LlamaConfig / Qwen2Config default tie_word_embeddings to false.
    c.tied_embeddings = bool_key(j, where, "tie_word_embeddings", false);
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
        const json& s = j["rope_scaling"];
        if (!s.is_object()) fail(where, ": rope_scaling must be an object or null");
        std::string type = s.value("rope_type", s.value("type", std::string("default")));
        const std::string w = where + " (rope_scaling)";
        if (type == "linear" || type == "llama3") {
            c.rope_scaling = type;
            c.rope_factor = float(num_key(s, w, "factor", -1));
            if (type == "llama3") {
                c.rope_low_freq_factor = float(num_key(s, w, "low_freq_factor", 1.0));
                c.rope_high_freq_factor = float(num_key(s, w, "high_freq_factor", 4.0));
                c.rope_original_max_positions =
                    int_key(s, w, "original_max_position_embeddings", 8192);
            }
        } else if (type != "default") {
            fail(where, ": rope_scaling type '", type,
                 "' is not supported (linear, llama3 or none)");
        }
    }
    c.validate(where);
    return c;
}

std::string hf_to_t6_name(const std::string& hf) {
    static const std::map<std::string, std::string> layer = {
        {"input_layernorm.weight", "ln_1.weight"},
        {"post_attention_layernorm.weight", "ln_2.weight"},
        {"self_attn.q_proj.weight", "attn.c_q.weight"},
        {"self_attn.k_proj.weight", "attn.c_k.weight"},
        {"self_attn.v_proj.weight", "attn.c_v.weight"},
        {"self_attn.q_proj.bias", "attn.c_q.bias"},
        {"self_attn.k_proj.bias", "attn.c_k.bias"},
        {"self_attn.v_proj.bias", "attn.c_v.bias"},
        {"self_attn.o_proj.weight", "attn.c_proj.weight"},
        {"mlp.gate_proj.weight", "mlp.c_fc1.weight"},  // silu(gate) * up = silu(fc1) * fc2
        {"mlp.up_proj.weight", "mlp.c_fc2.weight"},
        {"mlp.down_proj.weight", "mlp.c_proj.weight"}};
    if (hf == "model.embed_tokens.weight") return kEmbeddingName;
    if (hf == "model.norm.weight") return kFinalNormName;
    if (hf == "lm_head.weight") return kLmHeadName;
    const std::string pre = "model.layers.";
    if (hf.rfind(pre, 0) != 0) return "";
    size_t dot = hf.find('.', pre.size());
    if (dot == std::string::npos || dot == pre.size()) return "";
    const std::string idx = hf.substr(pre.size(), dot - pre.size());
    if (!std::all_of(idx.begin(), idx.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return "";
    auto it = layer.find(hf.substr(dot + 1));
    if (it == layer.end()) return "";
    return "transformer.h." + idx + "." + it->second;
}

HfImported import_hf(const std::string& dir, int block_size, bool with_tokenizer) {
    if (!fs::is_directory(dir))
        fail(dir, ": not a folder (give the model's save_pretrained folder)");
    const std::string cfg_path = (fs::path(dir) / "config.json").string();
    const json cj = read_json(cfg_path);
    HfImported out;
    const ModelConfig cfg = hf_config_to_t6(cj, cfg_path, block_size, &out.architecture);

    // The weight files: one model.safetensors, or the shards an index maps tensors to.
    std::map<std::string, std::vector<std::string>> files;  // file -> HF tensor names in it
    const std::string single = (fs::path(dir) / "model.safetensors").string();
    const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
    if (file_exists(index)) {
        const json ij = read_json(index);
        if (!ij.is_object() || !ij.contains("weight_map") || !ij["weight_map"].is_object())
            fail(index, ": no 'weight_map' object");
        for (auto& [name, file] : ij["weight_map"].items()) {
            if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos)
                fail(index, ": tensor '", name, "' maps to ", file.dump(),
                     ", not a file name in the folder");
            const std::string p = (fs::path(dir) / file.get<std::string>()).string();
            if (!file_exists(p))
                fail(index, ": shard '", file.get<std::string>(), "' (holding '", name,
                     "') is missing from ", dir);
            files[p].push_back(name);
        }
    } else if (file_exists(single)) {
        files[single] = {};  // every tensor of the file
    } else if (file_exists((fs::path(dir) / "pytorch_model.bin").string())) {
        fail(dir,
             ": only pytorch_model.bin (a pickle); t6 reads safetensors: resave the model "
             "with save_pretrained(..., safe_serialization=True)");
    } else {
        fail(dir, ": no model.safetensors or model.safetensors.index.json");
    }

    out.model = std::make_unique<Model>(cfg);
    Model& m = *out.model;
    const ParameterLayout& L = m.layout();
    std::set<std::string> done, dtypes;
    for (auto& [path, listed] : files) {
        SafeTensorsReader r(path);
        std::vector<std::string> names = listed;
        if (names.empty())
            for (const auto& t : r.tensors()) names.push_back(t.name);
        for (const auto& hf : names) {
            if (!r.has(hf))
                fail(path, ": tensor '", hf,
                     "' is listed in model.safetensors.index.json but not "
                     "stored in this shard");
            // Buffers some older exports saved; recomputed from the config.
            const std::string buf = "rotary_emb.inv_freq";
            if (hf.size() >= buf.size() && hf.compare(hf.size() - buf.size(), buf.size(), buf) == 0)
                continue;
            std::string name = hf_to_t6_name(hf);
            if (name == kLmHeadName && cfg.tied_embeddings) continue;  // a copy of embed_tokens
            const ParamSpec* s = name.empty() ? nullptr : L.find(name);
            if (!s)
                fail(path, ": tensor '", hf, "' is not part of a ", out.architecture, " (",
                     cfg.describe(), ")");
            const TensorInfo& ti = r.info(hf);
            if (ti.dtype != DType::F32 && ti.dtype != DType::BF16 && ti.dtype != DType::F16)
                fail(path, ": tensor '", hf, "' has dtype ", dtype_name(ti.dtype),
                     " (F32, BF16 or F16 expected)");
            if (ti.shape != s->shape)
                fail(path, ": tensor '", hf, "' has shape ", shape_str(ti.shape), ", expected ",
                     shape_str(s->shape), " from config.json");
            if (!done.insert(name).second) fail(path, ": tensor '", hf, "' is stored twice");
            r.read_f32(hf, m.params() + s->offset, s->shape);
            dtypes.insert(dtype_name(ti.dtype));
            out.tensors++;
        }
    }
    for (const auto& s : L.specs)
        if (!done.count(s.name))
            fail(files.size() == 1 && files.count(single) ? single : index,
                 ": no tensor for t6 parameter '", s.name, "'",
                 s.name == kLmHeadName ? " (lm_head.weight; config.json says tie_word_embeddings "
                                         "is false)"
                                       : "");
    for (const auto& s : L.specs)  // a t6 checkpoint never holds NaN or infinite weights
        for (size_t i = 0; i < s.numel; i++)
            if (!std::isfinite(m.params()[s.offset + i]))
                fail(dir, ": tensor for '", s.name, "' holds ", m.params()[s.offset + i],
                     " at element ", i);
    for (const auto& d : dtypes) out.dtypes += (out.dtypes.empty() ? "" : ",") + d;

    const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
    if (with_tokenizer && file_exists(tok_path)) {
        int eos = -1;
        if (cj.contains("eos_token_id")) {
            const json& e = cj["eos_token_id"];
            if (e.is_number_integer())
                eos = e.get<int>();
            else if (e.is_array() && !e.empty() && e[0].is_number_integer())
                eos = e[0].get<int>();
        }
        out.tokenizer = hf_tokenizer_spec(read_json(tok_path), eos, tok_path);
    }
    return out;
}

}  // namespace t6
