// Multiple-choice metrics exactly as lm-evaluation-harness computes them
// (lm_eval/api/task.py ConfigurableTask.process_results, output_type multiple_choice):
//   pred = np.argmax(lls);  acc = pred == gold
//   completion_len = np.array([float(len(i)) for i in choices])   # choices = doc_to_choice(doc)
//   pred_norm = np.argmax(lls / completion_len);  acc_norm = pred_norm == gold
// where len() counts the Unicode code points of the choice text (without target_delimiter) and
// np.argmax returns the first of equal maxima. Aggregation is the mean, and its standard error
// is lm_eval/api/metrics.py mean_stderr: sample_stddev (ddof = 1) / sqrt(n) ("N/A" for n < 2).
#pragma once
#include <string>
#include <vector>

namespace t6::eval {

// Index of the first maximum (numpy.argmax); -1 for an empty vector.
int argmax_first(const std::vector<double>& v);

struct DocScore {
    int pred = -1, pred_norm = -1;
    double acc = 0, acc_norm = 0;
};
DocScore score_doc(const std::vector<double>& lls, const std::vector<std::string>& choice_texts,
                   int gold);

struct MeanStderr {
    double mean = 0;
    double stderr_ = 0;  // NaN when fewer than two values (the harness prints N/A)
};
MeanStderr mean_stderr(const std::vector<double>& xs);

}  // namespace t6::eval
