#include "eval/mc_report.h"

#include <cmath>
#include <cstdio>

namespace t6::eval {

namespace {

std::string pct(double v) {
    if (std::isnan(v)) return "N/A";
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", 100.0 * v);
    return b;
}

}  // namespace

double table_score(const McResult& r, bool use_acc_norm) {
    return use_acc_norm && r.has_acc_norm ? r.acc_norm.mean : r.acc.mean;
}

std::string task_table(const std::vector<McResult>& results) {
    std::string s = "| Task | Format | Shots | Docs | acc | ± | acc_norm | ± |\n";
    s += "|---|---|---:|---:|---:|---:|---:|---:|\n";
    double sum = 0;
    for (const auto& r : results) {
        s += "| " + r.task + " | " + r.format + " | " + std::to_string(r.shots) + " | " +
             std::to_string(r.num_docs) + " | " + pct(r.acc.mean) + " | " + pct(r.acc.stderr_) +
             " | " + (r.has_acc_norm ? pct(r.acc_norm.mean) : "—") + " | " +
             (r.has_acc_norm ? pct(r.acc_norm.stderr_) : "—") + " |\n";
        sum += r.acc.mean;
    }
    if (results.size() > 1)
        s += "| Avg. | | | | " + pct(sum / double(results.size())) + " | | | |\n";
    return s;
}

std::string comparison_table(const std::vector<ModelResults>& models, bool use_acc_norm) {
    if (models.empty()) return "";
    std::string s = "| Model |", rule = "|---|";
    for (const auto& t : models[0].tasks) {
        s += " " + t.task + " |";
        rule += "---:|";
    }
    s += " Avg. |\n" + rule + "---:|\n";
    for (const auto& m : models) {
        s += "| " + m.model + " |";
        double sum = 0;
        for (const auto& t : m.tasks) {
            const double v = table_score(t, use_acc_norm);
            s += " " + pct(v) + " |";
            sum += v;
        }
        s += " " + pct(m.tasks.empty() ? NAN : sum / double(m.tasks.size())) + " |\n";
    }
    return s;
}

}  // namespace t6::eval
