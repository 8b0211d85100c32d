#include "serve/chat_template.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace t6::serve {

using nlohmann::json;

ChatTemplate ChatTemplate::parse(const std::string& json_text, const std::string& where) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::exception& e) {
        fail(where, ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(where, ": a chat template must be a JSON object");
    ChatTemplate t;
    t.source = where;
    const auto str = [&](const json& o, const char* key, std::string& out, const std::string& at) {
        if (!o.contains(key)) return;
        if (!o[key].is_string()) fail(where, ": ", at, key, " must be a string");
        out = o[key].get<std::string>();
    };
    for (const auto& [key, v] : j.items()) {
        if (key == "bos" || key == "generation_prompt") continue;
        if (key == "system" || key == "user" || key == "assistant") {
            Affixes& a = key == "system" ? t.system : key == "user" ? t.user : t.assistant;
            if (!v.is_object())
                fail(where, ": ", key, " must be {\"prefix\": ..., \"suffix\": ...}");
            for (const auto& [k2, v2] : v.items()) {
                (void)v2;
                if (k2 != "prefix" && k2 != "suffix")
                    fail(where, ": unknown key ", key, ".", k2, " (prefix, suffix)");
            }
            str(v, "prefix", a.prefix, key + ".");
            str(v, "suffix", a.suffix, key + ".");
        } else if (key == "stop") {
            if (!v.is_array()) fail(where, ": stop must be a list of strings");
            t.stop.clear();
            for (const auto& s : v) {
                if (!s.is_string() || s.get<std::string>().empty())
                    fail(where, ": stop must be a list of non-empty strings");
                t.stop.push_back(s.get<std::string>());
            }
        } else {
            fail(where, ": unknown key '", key,
                 "' (bos, system, user, assistant, generation_prompt, stop)");
        }
    }
    str(j, "bos", t.bos, "");
    str(j, "generation_prompt", t.generation_prompt, "");
    return t;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages) const {
    std::string out = bos;
    for (const auto& m : messages) {
        const Affixes& a = m.role == "system" ? system : m.role == "user" ? user : assistant;
        out += a.prefix + m.content + a.suffix;
    }
    return out + generation_prompt;
}

}  // namespace t6::serve
