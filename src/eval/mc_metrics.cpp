#include "eval/mc_metrics.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "eval/mc_task.h"

namespace t6::eval {

int argmax_first(const std::vector<double>& v) {
    int best = v.empty() ? -1 : 0;
    for (size_t i = 1; i < v.size(); i++)
        if (v[i] > v[best]) best = int(i);  // strictly greater: ties keep the first
    return best;
}

DocScore score_doc(const std::vector<double>& lls, const std::vector<std::string>& choice_texts,
                   int gold) {
    if (lls.size() != choice_texts.size())
        fail("internal: ", lls.size(), " log-likelihoods for ", choice_texts.size(), " choices");
    DocScore s;
    s.pred = argmax_first(lls);
    std::vector<double> norm(lls.size());
    for (size_t i = 0; i < lls.size(); i++) norm[i] = lls[i] / double(py_len(choice_texts[i]));
    s.pred_norm = argmax_first(norm);
    s.acc = s.pred == gold ? 1.0 : 0.0;
    s.acc_norm = s.pred_norm == gold ? 1.0 : 0.0;
    return s;
}

MeanStderr mean_stderr(const std::vector<double>& xs) {
    MeanStderr r;
    const double n = double(xs.size());
    if (xs.empty()) {
        r.mean = r.stderr_ = std::numeric_limits<double>::quiet_NaN();
        return r;
    }
    for (double x : xs) r.mean += x;
    r.mean /= n;
    if (xs.size() < 2) {
        r.stderr_ = std::numeric_limits<double>::quiet_NaN();
        return r;
    }
    double ss = 0;
    for (double x : xs) ss += (x - r.mean) * (x - r.mean);
    r.stderr_ = std::sqrt(ss / (n - 1)) / std::sqrt(n);
    return r;
}

}  // namespace t6::eval
