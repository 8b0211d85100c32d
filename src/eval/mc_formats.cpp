// The native formats of the multiple-choice benchmarks, turned into documents with the prompt
// templates of EleutherAI/lm-evaluation-harness (lm_eval/tasks/<task>/*.yaml, v0.4). Each maker
// quotes the YAML keys it reproduces. The harness's default target_delimiter is " " and its
// default fewshot_delimiter "\n\n" (lm_eval/api/task.py, TaskConfig).
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/mc_task.h"

namespace t6::eval {

namespace {

using nlohmann::json;

const json& field(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) fail("missing field '", key, "'");
    return *it;
}

std::string str(const json& j, const char* key) {
    const json& v = field(j, key);
    if (!v.is_string()) fail("field '", key, "' must be a string");
    return v.get<std::string>();
}

std::vector<std::string> str_list(const json& v, const char* key) {
    if (!v.is_array() || v.empty()) fail("field '", key, "' must be a non-empty list of strings");
    std::vector<std::string> out;
    for (const auto& e : v) {
        if (!e.is_string()) fail("field '", key, "' must be a list of strings");
        out.push_back(e.get<std::string>());
    }
    return out;
}

// An integer field that may also be written as a string of digits (HellaSwag's "label": "3").
int int_field(const json& j, const char* key) {
    const json& v = field(j, key);
    if (v.is_number_integer()) return v.get<int>();
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (!s.empty() && s.size() < 9 && s.find_first_not_of("0123456789") == std::string::npos)
            return std::stoi(s);
    }
    fail("field '", key, "' must be an integer");
}

// The index of `key` among `labels` (harness: choices.label.index(answerKey)).
int label_index(const std::vector<std::string>& labels, const std::string& key) {
    for (size_t i = 0; i < labels.size(); i++)
        if (labels[i] == key) return int(i);
    fail("answerKey '", key, "' is not one of the choice labels");
}

// A document whose choices all continue one context.
McDoc single_context(std::string text, std::vector<std::string> choices, int gold) {
    McDoc d;
    d.contexts = {std::move(text)};
    d.continuations = choices;
    d.choice_texts = std::move(choices);
    d.gold = gold;
    return d;
}

// {"choices": {"text": [...], "label": [...]}} (HuggingFace ai2_arc / openbookqa), or the
// original AI2 files' {"question": {"stem": ..., "choices": [{"text", "label"}, ...]}}.
struct LabelledChoices {
    std::string stem;
    std::vector<std::string> text, label;
};

LabelledChoices labelled_choices(const json& j, const char* stem_key) {
    LabelledChoices c;
    const json* choices = nullptr;
    if (j.contains("question") && j["question"].is_object()) {  // original AI2 layout
        const json& q = j["question"];
        c.stem = str(q, "stem");
        choices = &field(q, "choices");
    } else {
        c.stem = str(j, stem_key);
        choices = &field(j, "choices");
    }
    if (choices->is_object()) {
        c.text = str_list(field(*choices, "text"), "choices.text");
        c.label = str_list(field(*choices, "label"), "choices.label");
    } else if (choices->is_array()) {
        for (const auto& e : *choices) {
            if (!e.is_object()) fail("field 'choices' must hold {text, label} objects");
            c.text.push_back(str(e, "text"));
            c.label.push_back(str(e, "label"));
        }
    } else {
        fail("field 'choices' must be {text: [...], label: [...]}");
    }
    if (c.text.size() != c.label.size() || c.text.empty())
        fail("choices.text and choices.label must have the same non-zero length");
    return c;
}

// lm_eval/tasks/hellaswag/utils.py, preprocess(): strip(); replace(" [title]", ". ");
// re.sub("\\[.*?\\]", ""); replace("  ", " ").
std::string hellaswag_preprocess(const std::string& in) {
    std::string s = py_strip(in), t;
    for (size_t p = 0;;) {  // replace(" [title]", ". ")
        size_t h = s.find(" [title]", p);
        t += s.substr(p, h == std::string::npos ? std::string::npos : h - p);
        if (h == std::string::npos) break;
        t += ". ";
        p = h + 8;
    }
    s.clear();
    for (size_t i = 0; i < t.size();) {  // re.sub("\\[.*?\\]", "") ('.' stops at a newline)
        if (t[i] == '[') {
            size_t j = i + 1;
            while (j < t.size() && t[j] != ']' && t[j] != '\n') j++;
            if (j < t.size() && t[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        s += t[i++];
    }
    t.clear();
    for (size_t i = 0; i < s.size();) {  // replace("  ", " "), one left-to-right pass
        if (s.compare(i, 2, "  ") == 0) {
            t += ' ';
            i += 2;
        } else {
            t += s[i++];
        }
    }
    return t;
}

// Python's str.capitalize() (ASCII letters): first character upper case, the rest lower case.
std::string py_capitalize(std::string s) {
    for (size_t i = 0; i < s.size(); i++)
        s[i] = char(i == 0 ? std::toupper((unsigned char)s[i]) : std::tolower((unsigned char)s[i]));
    return s;
}

// lm_eval/tasks/hellaswag/hellaswag.yaml: process_docs: utils.process_docs,
// doc_to_text: "{{query}}", doc_to_choice: "choices", doc_to_target: "{{label}}" where
// query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
// choices = [preprocess(e) for e in endings].
McDoc hellaswag(const json& j) {
    const std::string ctx = str(j, "ctx_a") + " " + py_capitalize(str(j, "ctx_b"));
    std::vector<std::string> endings = str_list(field(j, "endings"), "endings");
    for (auto& e : endings) e = hellaswag_preprocess(e);
    return single_context(hellaswag_preprocess(str(j, "activity_label") + ": " + ctx), endings,
                          int_field(j, "label"));
}

// lm_eval/tasks/arc/arc_easy.yaml (arc_challenge includes it):
// doc_to_text: "Question: {{question}}\nAnswer:", doc_to_choice: "{{choices.text}}",
// doc_to_target: "{{choices.label.index(answerKey)}}".
McDoc arc(const json& j) {
    LabelledChoices c = labelled_choices(j, "question");
    return single_context("Question: " + c.stem + "\nAnswer:", c.text,
                          label_index(c.label, str(j, "answerKey")));
}

// lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text: question_stem,
// doc_to_choice: "{{choices.text}}", doc_to_target: "{{choices.label.index(answerKey.lstrip())}}".
McDoc obqa(const json& j) {
    LabelledChoices c = labelled_choices(j, "question_stem");
    return single_context(c.stem, c.text, label_index(c.label, py_lstrip(str(j, "answerKey"))));
}

// lm_eval/tasks/piqa/piqa.yaml: doc_to_text: "Question: {{goal}}\nAnswer:",
// doc_to_choice: "{{[sol1, sol2]}}", doc_to_target: label.
McDoc piqa(const json& j) {
    return single_context("Question: " + str(j, "goal") + "\nAnswer:",
                          {str(j, "sol1"), str(j, "sol2")}, int_field(j, "label"));
}

// lm_eval/tasks/sciq/sciq.yaml: doc_to_text: "{{support.lstrip()}}\nQuestion:
// {{question}}\nAnswer:", doc_to_choice: "{{[distractor1, distractor2, distractor3,
// correct_answer]}}", doc_to_target: 3.
McDoc sciq(const json& j) {
    return single_context(
        py_lstrip(str(j, "support")) + "\nQuestion: " + str(j, "question") + "\nAnswer:",
        {str(j, "distractor1"), str(j, "distractor2"), str(j, "distractor3"),
         str(j, "correct_answer")},
        3);
}

// lm_eval/tasks/super_glue/boolq/default.yaml:
// doc_to_text: "{{passage}}\nQuestion: {{question}}?\nAnswer:", doc_to_choice: ["no", "yes"],
// doc_to_target: label. The original BoolQ files hold "answer": true/false instead of "label".
McDoc boolq(const json& j) {
    int gold;
    if (j.contains("answer")) {
        const json& a = j["answer"];
        if (!a.is_boolean()) fail("field 'answer' must be true or false");
        gold = a.get<bool>() ? 1 : 0;
    } else {
        gold = int_field(j, "label");
    }
    return single_context(str(j, "passage") + "\nQuestion: " + str(j, "question") + "?\nAnswer:",
                          {"no", "yes"}, gold);
}

// lm_eval/tasks/winogrande/default.yaml + preprocess_winogrande.py (multiple_input: true):
//   doc_to_text:   answer_to_num = {"1": 0, "2": 1}; return answer_to_num[doc["answer"]]
//   doc_to_target: idx = sentence.index("_") + 1; return sentence[idx:].strip()
//   doc_to_choice: idx = sentence.index("_"); [sentence[:idx] + opt for opt in (option1, option2)]
// Each option-filled prefix is a context; the shared continuation is the text after the blank.
McDoc winogrande(const json& j) {
    const std::string s = str(j, "sentence");
    const size_t idx = s.find('_');
    if (idx == std::string::npos) fail("field 'sentence' has no blank '_'");
    McDoc d;
    d.contexts = {s.substr(0, idx) + str(j, "option1"), s.substr(0, idx) + str(j, "option2")};
    d.continuations = {py_strip(s.substr(idx + 1))};
    d.choice_texts = d.contexts;
    const json& a = field(j, "answer");
    if (a.is_string() && (a == "1" || a == "2"))
        d.gold = a == "1" ? 0 : 1;
    else if (a.is_number_integer() && (a == 1 || a == 2))
        d.gold = a.get<int>() - 1;
    else
        fail("field 'answer' must be \"1\" or \"2\"");
    return d;
}

// lm_eval/tasks/mmlu/default/_default_template_yaml:
// doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD.
// {{choices[3]}}\nAnswer:", doc_to_choice: ["A", "B", "C", "D"], doc_to_target: answer; each
// subject's YAML adds description: "The following are multiple choice questions (with answers)
// about <subject>.\n\n".
McDoc mmlu(const json& j) {
    std::vector<std::string> ch = str_list(field(j, "choices"), "choices");
    if (ch.size() != 4) fail("field 'choices' must hold 4 answers (A-D)");
    std::string text = py_strip(str(j, "question"));
    for (int i = 0; i < 4; i++) text += std::string("\n") + char('A' + i) + ". " + ch[i];
    text += "\nAnswer:";
    int gold;
    const json& a = field(j, "answer");
    if (a.is_string() && a.get<std::string>().size() == 1 && a.get<std::string>()[0] >= 'A' &&
        a.get<std::string>()[0] <= 'D')
        gold = a.get<std::string>()[0] - 'A';
    else
        gold = int_field(j, "answer");
    McDoc d = single_context(text, {"A", "B", "C", "D"}, gold);
    if (j.contains("subject")) {
        std::string subject = str(j, "subject");
        for (char& c : subject)
            if (c == '_') c = ' ';
        d.description =
            "The following are multiple choice questions (with answers) about " + subject + ".\n\n";
    }
    return d;
}

McDoc generic(const json& j) {
    McDoc d;
    if (j.contains("contexts")) {
        d.contexts = str_list(j["contexts"], "contexts");
        d.continuations = {str(j, "continuation")};
        d.choice_texts = d.contexts;
        if (d.contexts.size() < 2) fail("field 'contexts' needs at least 2 entries");
    } else {
        d = single_context(str(j, "context"), str_list(field(j, "choices"), "choices"), 0);
    }
    d.gold = int_field(j, "gold");
    if (j.contains("target_delimiter")) d.target_delimiter = str(j, "target_delimiter");
    if (j.contains("description")) d.description = str(j, "description");
    if (j.contains("fewshot_context")) d.fewshot_text = str(j, "fewshot_context");
    return d;
}

}  // namespace

McDoc make_mc_doc(const json& j, McFormat format) {
    if (!j.is_object()) fail("a document must be a JSON object");
    McDoc d;
    switch (format) {
        case McFormat::hellaswag:
            d = hellaswag(j);
            break;
        case McFormat::arc:
            d = arc(j);
            break;
        case McFormat::obqa:
            d = obqa(j);
            break;
        case McFormat::piqa:
            d = piqa(j);
            break;
        case McFormat::sciq:
            d = sciq(j);
            break;
        case McFormat::boolq:
            d = boolq(j);
            break;
        case McFormat::winogrande:
            d = winogrande(j);
            break;
        case McFormat::mmlu:
            d = mmlu(j);
            break;
        case McFormat::generic:
        case McFormat::automatic:
            d = generic(j);
            break;
    }
    if (d.gold < 0 || d.gold >= d.num_choices())
        fail("gold index ", d.gold, " is outside the ", d.num_choices(), " choices");
    // The harness's ContextSampler: doc_to_text(doc) + target_delimiter + the gold target (for
    // multiple_input: doc_to_choice(doc)[doc_to_text(doc)] + target_delimiter + doc_to_target).
    if (d.fewshot_text.empty())
        d.fewshot_text = d.multiple_input()
                             ? d.contexts[d.gold] + d.target_delimiter + d.continuations[0]
                             : d.contexts[0] + d.target_delimiter + d.continuations[d.gold];
    return d;
}

}  // namespace t6::eval
