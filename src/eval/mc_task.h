// Multiple-choice tasks read from JSONL, one document per line, in a generic schema or in the
// native published format of a benchmark, turned into what lm-evaluation-harness's task YAMLs
// make of them (doc_to_text, doc_to_choice, doc_to_target, target_delimiter, description).
// The per-format templates are in mc_formats.cpp, each citing its harness file.
//
// Generic schema (one object per line):
//   {"context": str, "choices": [str, ...], "gold": int}
//   optional: "target_delimiter" (default " "), "description" (text before the few-shot
//   examples), "fewshot_context" (this document's text when it serves as a few-shot example;
//   default context + target_delimiter + choices[gold]);
//   or, for partial scoring (the harness's multiple_input, as WinoGrande):
//   {"contexts": [str, ...], "continuation": str, "gold": int}.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace t6::eval {

enum class McFormat {
    automatic,
    generic,
    hellaswag,
    arc,
    piqa,
    sciq,
    obqa,
    boolq,
    winogrande,
    mmlu
};
McFormat parse_mc_format(const std::string& s);  // fails listing the names
const char* mc_format_name(McFormat f);

struct McDoc {
    int line = 0;             // 1-based line in the task file
    std::string description;  // before the few-shot examples (harness `description`)
    // One context shared by every choice, or (multiple_input) one context per choice.
    std::vector<std::string> contexts;
    // One continuation per choice (without the delimiter), or (multiple_input) one shared.
    std::vector<std::string> continuations;
    std::string target_delimiter = " ";
    int gold = 0;
    // The harness's doc_to_choice(doc), whose lengths (code points) normalise acc_norm.
    std::vector<std::string> choice_texts;
    std::string fewshot_text;  // this doc as a few-shot example: text + delimiter + gold target

    bool multiple_input() const { return contexts.size() > 1; }
    int num_choices() const { return int(choice_texts.size()); }
};

struct McTask {
    std::string name;  // the file's stem
    std::string path;
    McFormat format = McFormat::generic;
    bool has_acc_norm = true;  // the harness YAML lists acc_norm (boolq, winogrande, mmlu: no)
    std::vector<McDoc> docs;
};

// Reads a JSONL task file. Blank lines are skipped. A line that is not JSON, lacks a field, or
// has a gold index outside its choices fails as "FILE:LINE: message". automatic detects the
// format from the first document's keys.
McTask read_mc_task(const std::string& path, McFormat format = McFormat::automatic);

// The format a document's keys suggest (generic if none matches).
McFormat detect_mc_format(const nlohmann::json& doc);

// One document of a given format (fails with a message; read_mc_task adds FILE:LINE).
McDoc make_mc_doc(const nlohmann::json& j, McFormat format);

// Python's str.strip()/lstrip() on ASCII white space, and len(str) (Unicode code points).
std::string py_strip(const std::string& s);
std::string py_lstrip(const std::string& s);
size_t py_len(const std::string& s);

}  // namespace t6::eval
