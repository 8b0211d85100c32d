#include "eval/mc_task.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace t6::eval {

namespace {

struct FormatName {
    McFormat format;
    const char* name;
};
const FormatName kFormats[] = {
    {McFormat::automatic, "auto"},
    {McFormat::generic, "generic"},
    {McFormat::hellaswag, "hellaswag"},
    {McFormat::arc, "arc"},
    {McFormat::piqa, "piqa"},
    {McFormat::sciq, "sciq"},
    {McFormat::obqa, "obqa"},
    {McFormat::boolq, "boolq"},
    {McFormat::winogrande, "winogrande"},
    {McFormat::mmlu, "mmlu"},
};

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

McFormat parse_mc_format(const std::string& s) {
    std::string names;
    for (const auto& f : kFormats) {
        if (s == f.name) return f.format;
        names += std::string(names.empty() ? "" : ", ") + f.name;
    }
    fail("unknown task format '", s, "' (", names, ")");
}

const char* mc_format_name(McFormat f) {
    for (const auto& x : kFormats)
        if (x.format == f) return x.name;
    return "?";
}

McFormat detect_mc_format(const nlohmann::json& j) {
    if (!j.is_object()) return McFormat::generic;
    auto has = [&](const char* k) { return j.contains(k); };
    if (has("ctx_a") && has("endings")) return McFormat::hellaswag;
    if (has("goal") && has("sol1")) return McFormat::piqa;
    if (has("distractor1") && has("correct_answer")) return McFormat::sciq;
    if (has("sentence") && has("option1")) return McFormat::winogrande;
    if (has("passage") && has("question")) return McFormat::boolq;
    if (has("question_stem")) return McFormat::obqa;
    if (has("answerKey")) return McFormat::arc;  // (original OpenBookQA files: --format obqa)
    if (has("question") && has("choices") && has("answer")) return McFormat::mmlu;
    return McFormat::generic;
}

McTask read_mc_task(const std::string& path, McFormat format) {
    std::ifstream in(path);
    if (!in) fail(path, ": cannot open the task file");
    McTask task;
    task.path = path;
    task.name = std::filesystem::path(path).stem().string();
    task.format = format;
    std::string line;
    for (int lineno = 1; std::getline(in, line); lineno++) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error& e) {
                std::string what = e.what();
                fail("not valid JSON (", what.substr(what.find(']') + 2), ")");
            }
            if (task.format == McFormat::automatic) task.format = detect_mc_format(j);
            McDoc d = make_mc_doc(j, task.format);
            d.line = lineno;
            task.docs.push_back(std::move(d));
        } catch (const Error& e) {
            fail(path, ":", lineno, ": ", e.what());
        } catch (const nlohmann::json::exception& e) {
            fail(path, ":", lineno, ": ", e.what());
        }
    }
    if (task.docs.empty()) fail(path, ": no documents");
    if (task.format == McFormat::automatic) task.format = McFormat::generic;
    // Metrics of each harness YAML: boolq, winogrande and mmlu list acc only.
    task.has_acc_norm = task.format != McFormat::boolq && task.format != McFormat::winogrande &&
                        task.format != McFormat::mmlu;
    return task;
}

std::string py_strip(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) b++;
    while (e > b && is_space(s[e - 1])) e--;
    return s.substr(b, e - b);
}

std::string py_lstrip(const std::string& s) {
    size_t b = 0;
    while (b < s.size() && is_space(s[b])) b++;
    return s.substr(b);
}

size_t py_len(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

}  // namespace t6::eval
