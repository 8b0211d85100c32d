#include "study/peer_figures.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"

namespace t6::study {

std::vector<PeerFigure> read_peer_figures(const std::string& path, const std::string& benchmark) {
    if (!file_exists(path)) fail(path, ": peer figures file not found");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file_text(path));
    } catch (const nlohmann::json::exception& e) {
        fail(path, ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail(path, ": not a JSON object");
    std::vector<PeerFigure> out;
    if (!j.contains(benchmark)) return out;
    const auto& list = j[benchmark];
    if (!list.is_array()) fail(path, ": '", benchmark, "' is not an array");
    for (size_t i = 0; i < list.size(); i++) {
        const auto& e = list[i];
        const std::string where = cat(path, ": ", benchmark, "[", i, "]");
        if (!e.is_object() || !e.contains("preset") || !e["preset"].is_string() ||
            !e.contains("batch") || !e["batch"].is_number_integer() || !e.contains("seq") ||
            !e["seq"].is_number_integer() || !e.contains("tokens_per_s") ||
            !e["tokens_per_s"].is_number())
            fail(where, ": needs preset (string), batch, seq (integers) and tokens_per_s");
        PeerFigure p{e["preset"].get<std::string>(), e["batch"].get<int>(), e["seq"].get<int>(),
                     e["tokens_per_s"].get<double>()};
        if (!(p.tokens_per_s > 0)) fail(where, ": tokens_per_s must be positive");
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace t6::study
