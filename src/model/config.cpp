#include "model/config.h"

#include "model/attn/kinds.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"

namespace t6 {

using nlohmann::json;

const char* attention_kind_name(AttentionKind k) {
    return kind_info(k).config_name;
}

AttentionKind parse_attention_kind(const std::string& s, const std::string& where) {
    // A config name ("tpa") or a preset suffix ("t6"), from the kinds table.
    if (const AttentionKindInfo* k = find_kind(s)) return k->kind;
    std::string names;
    for (const auto& r : attention_kinds())
        names += (names.empty() ? "" : ", ") + std::string(r.config_name);
    fail(where, ": attention '", s, "' is not one of ", names);
}

int ModelConfig::hidden_dim() const {
    // Official: math.floor(8/3 * n_embd), evaluated in double (docs/numerics.md §11).
    return mlp_hidden > 0 ? mlp_hidden : int(std::floor(8.0 / 3.0 * double(n_embd)));
}

bool ModelConfig::uses_hf_features() const {
    return norm_weights || !tied_embeddings || qkv_bias || rope_hf || !rope_scaling.empty();
}

int ModelConfig::kv_heads() const {
    switch (attention) {
        case AttentionKind::mha:
            return n_head;
        case AttentionKind::mqa:
            return 1;
        case AttentionKind::gqa:
            return n_kv_head;
        default:
            return n_head;
    }
}

int ModelConfig::qk_head_dim() const {
    return attention == AttentionKind::mla ? head_dim + qk_rope_head_dim : head_dim;
}
int ModelConfig::v_dim() const {
    return attention == AttentionKind::mla ? v_head_dim : head_dim;
}
int ModelConfig::rope_dim() const {
    return attention == AttentionKind::mla ? qk_rope_head_dim : head_dim;
}

void ModelConfig::validate(const std::string& where) const {
    auto positive = [&](const char* key, long v, long max = 1L << 24) {
        if (v <= 0 || v > max) fail(where, ": ", key, " = ", v, " must be in [1, ", max, "]");
    };
    positive("vocab_size", vocab_size, 1L << 30);
    positive("n_layer", n_layer, 4096);
    positive("n_embd", n_embd, 1 << 16);
    positive("n_head", n_head, 4096);
    positive("head_dim", head_dim, 4096);
    positive("block_size", block_size, 1 << 22);
    positive("hidden (mlp_hidden)", hidden_dim(), 1 << 20);
    if (rope_dim() % 2 != 0)
        fail(where, ": the RoPE width ", rope_dim(),
             " must be even (head_dim or qk_rope_head_dim)");
    if (!(rope_theta > 0)) fail(where, ": rope_theta must be positive");
    if (!(norm_eps > 0)) fail(where, ": norm_eps must be positive");
    if (!rope_scaling.empty() && rope_scaling != "linear" && rope_scaling != "llama3")
        fail(where, ": rope_scaling '", rope_scaling, "' is not one of linear, llama3");
    if (!(rope_factor > 0)) fail(where, ": rope_factor must be positive");
    if (rope_scaling == "llama3" &&
        (!(rope_low_freq_factor > 0) || !(rope_high_freq_factor > rope_low_freq_factor) ||
         rope_original_max_positions <= 0))
        fail(where,
             ": llama3 rope scaling needs 0 < rope_low_freq_factor < rope_high_freq_factor and a "
             "positive rope_original_max_positions");
    if (qkv_bias && attention != AttentionKind::mha && attention != AttentionKind::mqa &&
        attention != AttentionKind::gqa)
        fail(where, ": qkv_bias is supported for mha, mqa and gqa only");
    switch (attention) {
        case AttentionKind::gqa:
            positive("n_kv_head", n_kv_head, 4096);
            if (n_head % n_kv_head != 0)
                fail(where, ": n_head = ", n_head, " is not a multiple of n_kv_head = ", n_kv_head);
            break;
        case AttentionKind::tpa:
            positive("q_rank", q_rank, 4096);
            [[fallthrough]];
        case AttentionKind::tpa_kvonly:
            positive("k_rank", k_rank, 4096);
            positive("v_rank", v_rank, 4096);
            break;
        case AttentionKind::mla:
            positive("q_lora_rank", q_lora_rank, 1 << 16);
            positive("kv_lora_rank", kv_lora_rank, 1 << 16);
            positive("qk_rope_head_dim", qk_rope_head_dim, 4096);
            positive("v_head_dim", v_head_dim, 4096);
            break;
        default:
            break;
    }
    // Activation and parameter buffers are indexed with 64-bit offsets, but single rows with int.
    double attn_width = double(n_head) * std::max(qk_head_dim(), v_dim()) * 4;
    if (attn_width > 2e9) fail(where, ": attention width n_head*head_dim is too large");
}

json ModelConfig::to_json() const {
    json j = {{"attention", attention_kind_name(attention)},
              {"vocab_size", vocab_size},
              {"n_layer", n_layer},
              {"n_embd", n_embd},
              {"n_head", n_head},
              {"head_dim", head_dim},
              {"block_size", block_size},
              {"mlp_hidden", hidden_dim()},
              {"rope_theta", rope_theta},
              {"norm_eps", norm_eps}};
    if (attention == AttentionKind::gqa) j["n_kv_head"] = n_kv_head;
    if (uses_hf_features()) {  // only then: official configs keep their version-1 JSON
        j["norm_weights"] = norm_weights;
        j["tied_embeddings"] = tied_embeddings;
        j["qkv_bias"] = qkv_bias;
        j["rope_hf"] = rope_hf;
        if (!rope_scaling.empty()) {
            j["rope_scaling"] = rope_scaling;
            j["rope_factor"] = rope_factor;
            if (rope_scaling == "llama3") {
                j["rope_low_freq_factor"] = rope_low_freq_factor;
                j["rope_high_freq_factor"] = rope_high_freq_factor;
                j["rope_original_max_positions"] = rope_original_max_positions;
            }
        }
    }
    if (attention == AttentionKind::tpa) j["q_rank"] = q_rank;
    if (is_tpa()) {
        j["k_rank"] = k_rank;
        j["v_rank"] = v_rank;
    }
    if (attention == AttentionKind::mla) {
        j["q_lora_rank"] = q_lora_rank;
        j["kv_lora_rank"] = kv_lora_rank;
        j["qk_rope_head_dim"] = qk_rope_head_dim;
        j["v_head_dim"] = v_head_dim;
    }
    return j;
}

std::string ModelConfig::describe() const {
    std::string s = cat(attention_kind_name(attention), " L=", n_layer, " C=", n_embd,
                        " H=", n_head, " D=", head_dim);
    if (attention == AttentionKind::gqa || attention == AttentionKind::mqa)
        s += cat(" KV=", kv_heads());
    if (attention == AttentionKind::tpa) s += cat(" R=", q_rank, "/", k_rank, "/", v_rank);
    if (attention == AttentionKind::tpa_kvonly) s += cat(" R=q/", k_rank, "/", v_rank);
    if (attention == AttentionKind::mla)
        s += cat(" dc=", kv_lora_rank, " dcq=", q_lora_rank, " rope=", qk_rope_head_dim,
                 " dv=", v_head_dim);
    return s + cat(" F=", hidden_dim(), " V=", vocab_size);
}

namespace {

int get_int(const json& v, const std::string& where, const std::string& key) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
        auto x = v.get<int64_t>();
        if (x < INT32_MIN || x > INT32_MAX) fail(where, ": ", key, " = ", x, " is out of range");
        return int(x);
    }
    fail(where, ": ", key, " must be an integer, got ", v.dump());
}

float get_float(const json& v, const std::string& where, const std::string& key) {
    if (v.is_number()) return v.get<float>();
    fail(where, ": ", key, " must be a number, got ", v.dump());
}

// Sets one t6 key. Returns false if the key is unknown.
bool set_key(ModelConfig& c, const std::string& key, const json& v, const std::string& where) {
    std::map<std::string, int*> ints = {
        {"vocab_size", &c.vocab_size},
        {"n_layer", &c.n_layer},
        {"n_embd", &c.n_embd},
        {"n_head", &c.n_head},
        {"head_dim", &c.head_dim},
        {"n_kv_head", &c.n_kv_head},
        {"q_rank", &c.q_rank},
        {"k_rank", &c.k_rank},
        {"v_rank", &c.v_rank},
        {"q_lora_rank", &c.q_lora_rank},
        {"kv_lora_rank", &c.kv_lora_rank},
        {"qk_rope_head_dim", &c.qk_rope_head_dim},
        {"v_head_dim", &c.v_head_dim},
        {"block_size", &c.block_size},
        {"mlp_hidden", &c.mlp_hidden},
        {"rope_original_max_positions", &c.rope_original_max_positions}};
    if (auto it = ints.find(key); it != ints.end()) {
        *it->second = get_int(v, where, key);
        return true;
    }
    if (key == "rank") {  // the official tied R_K = R_V
        c.k_rank = c.v_rank = get_int(v, where, key);
        return true;
    }
    if (key == "rope_theta") {
        c.rope_theta = get_float(v, where, key);
        return true;
    }
    std::map<std::string, float*> floats = {{"norm_eps", &c.norm_eps},
                                            {"rope_factor", &c.rope_factor},
                                            {"rope_low_freq_factor", &c.rope_low_freq_factor},
                                            {"rope_high_freq_factor", &c.rope_high_freq_factor}};
    if (auto it = floats.find(key); it != floats.end()) {
        *it->second = get_float(v, where, key);
        return true;
    }
    std::map<std::string, bool*> bools = {{"norm_weights", &c.norm_weights},
                                          {"tied_embeddings", &c.tied_embeddings},
                                          {"qkv_bias", &c.qkv_bias},
                                          {"rope_hf", &c.rope_hf}};
    if (auto it = bools.find(key); it != bools.end()) {
        if (!v.is_boolean()) fail(where, ": ", key, " must be true or false, got ", v.dump());
        *it->second = v.get<bool>();
        return true;
    }
    if (key == "rope_scaling") {
        if (!v.is_string()) fail(where, ": rope_scaling must be a string, got ", v.dump());
        c.rope_scaling = v.get<std::string>();
        return true;
    }
    if (key == "attention") {
        if (!v.is_string()) fail(where, ": attention must be a string, got ", v.dump());
        c.attention = parse_attention_kind(v.get<std::string>(), where);
        return true;
    }
    return false;
}

// An official GPTConfig (config.json of the official code): model_type selects the attention.
ModelConfig config_from_official_json(const json& j, const std::string& where) {
    ModelConfig c;
    if (!j["model_type"].is_string()) fail(where, ": model_type must be a string");
    std::string mt = j["model_type"];
    if (mt == "T6")
        c.attention = AttentionKind::tpa;
    else if (mt == "T6_kvonly")
        c.attention = AttentionKind::tpa_kvonly;
    else if (mt == "llama-mha" || mt == "llama")
        c.attention = AttentionKind::mha;
    else if (mt == "llama-gqa")
        c.attention = AttentionKind::gqa;
    else if (mt == "llama-mla")
        c.attention = AttentionKind::mla;
    else if (mt == "gpt2")
        // Hugging Face's save_pretrained writes "gpt2" for every official kind: only the tensor
        // names (pytorch_model.bin) tell T6 from llama-mha etc., and t6 cannot read that pickle.
        fail(where,
             ": an official train_adam.py config (model_type 'gpt2' for every kind; the kind is "
             "in the tensor names): import its folder with python3 tools/import_official.py DIR");
    else
        fail(where, ": model_type '", mt, "' is not an official T6/llama model file");
    // GPTConfig defaults of the official model files for the keys a config may omit.
    c.vocab_size = 50304;
    c.n_layer = 12;
    c.n_embd = 768;
    c.head_dim = 64;
    c.n_head = c.attention == AttentionKind::mla ? 13 : 22;
    c.q_rank = c.attention == AttentionKind::tpa ? 6 : 12;
    c.k_rank = c.v_rank = 2;
    int group_size = 11;
    for (auto& [key, v] : j.items()) {
        if (key == "model_type") continue;
        if (key == "group_size") {
            group_size = get_int(v, where, key);
        } else if (key == "bias" || key == "dropout" || key == "scale_attn_by_inverse_layer_idx" ||
                   key == "architectures" || key == "torch_dtype" ||
                   key == "transformers_version") {
            // Accepted and unused by the official model files (docs/numerics.md §7), or
            // written by Hugging Face's save_pretrained around the official GPTConfig.
        } else if (key == "using_groupnorm") {
            if (v.is_boolean() && v.get<bool>())
                fail(where,
                     ": using_groupnorm = true is not supported (off in every official "
                     "config)");
        } else if (key == "rank" || key == "q_rank" || key == "vocab_size" || key == "n_layer" ||
                   key == "n_embd" || key == "n_head" || key == "head_dim" || key == "block_size" ||
                   key == "q_lora_rank" || key == "kv_lora_rank" || key == "qk_rope_head_dim" ||
                   key == "v_head_dim") {
            set_key(c, key, v, where);
        } else {
            fail(where, ": unknown key '", key, "' in an official config");
        }
    }
    if (c.attention == AttentionKind::mha) {
        // The official llama-mha ignores head_dim and uses n_embd // n_head (docs/numerics.md §15).
        if (c.n_head <= 0 || c.n_embd % c.n_head != 0)
            fail(where, ": n_embd must be a multiple of n_head for llama-mha");
        c.head_dim = c.n_embd / c.n_head;
    }
    if (c.attention == AttentionKind::gqa) {
        if (group_size <= 0 || c.n_head % group_size != 0)
            fail(where, ": n_head = ", c.n_head, " is not a multiple of group_size = ", group_size);
        c.n_kv_head = c.n_head / group_size;
        if (c.n_kv_head == 1) c.attention = AttentionKind::mqa;
    }
    return c;
}

}  // namespace

ModelConfig config_from_json(const json& j, const std::string& where) {
    if (!j.is_object()) fail(where, ": a model config must be a JSON object");
    if (j.contains("model_type")) {
        ModelConfig c = config_from_official_json(j, where);
        c.validate(where);
        return c;
    }
    ModelConfig c;
    if (j.contains("preset")) {
        if (!j["preset"].is_string()) fail(where, ": preset must be a string");
        c = preset_config(j["preset"].get<std::string>());
    }
    bool mha_head_dim_given = j.contains("head_dim");
    for (auto& [key, v] : j.items()) {
        if (key == "preset") continue;
        if (!set_key(c, key, v, where)) fail(where, ": unknown key '", key, "'");
    }
    if (c.attention == AttentionKind::mha && !mha_head_dim_given && !j.contains("preset") &&
        c.n_head > 0 && c.n_embd % c.n_head == 0)
        c.head_dim = c.n_embd / c.n_head;
    c.validate(where);
    return c;
}

ModelConfig load_config_file(const std::string& path) {
    std::string text = read_file_text(path);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        fail(path, ": not valid JSON (byte ", e.byte, ")");
    }
    return config_from_json(j, path);
}

void apply_override(ModelConfig& cfg, const std::string& assignment) {
    auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) fail("override '", assignment, "': expected key=value");
    std::string key = assignment.substr(0, eq), val = assignment.substr(eq + 1);
    std::string where = cat("override '", assignment, "'");
    json v;
    try {
        v = json::parse(val);
    } catch (const json::parse_error&) {
        v = val;  // a bare string, e.g. attention=tpa
    } catch (const json::exception&) {
        fail(where, ": key '", key, "': ", val, " is out of range");  // e.g. 1e400
    }
    if (!set_key(cfg, key, v, where)) fail(where, ": unknown key '", key, "'");
    cfg.validate(where);
}

}  // namespace t6
