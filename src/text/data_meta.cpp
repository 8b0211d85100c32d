#include "text/data_meta.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_util.h"

namespace fs = std::filesystem;

namespace t6 {

nlohmann::json read_data_meta(const std::string& dir) {
    const fs::path meta = fs::path(dir) / "meta.json";
    std::error_code ec;
    const auto st = fs::status(meta, ec);
    if (!fs::exists(st)) return nullptr;
    if (!fs::is_regular_file(st)) fail(meta.string(), ": not a regular file");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_file_text(meta.string()));
    } catch (const nlohmann::json::exception& e) {
        fail(meta.string(), ": not valid JSON (", e.what(),
             "); fix it, or delete it and run t6 prepare again");
    }
    if (!j.is_object()) fail(meta.string(), ": not a JSON object");
    return j;
}

}  // namespace t6
