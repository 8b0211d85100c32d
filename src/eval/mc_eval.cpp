#include "eval/mc_eval.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/timing.h"
#include "eval/mc_prompt.h"

namespace t6::eval {

McResult evaluate_mc(const McTask& task, const Tokenizer& tok, LoglikScorer& scorer,
                     const McOptions& opt, const std::function<void(int, int)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    McResult r;
    r.task = task.name;
    r.format = mc_format_name(task.format);
    r.shots = opt.shots;
    r.has_acc_norm = task.has_acc_norm;
    const int n =
        opt.limit > 0 ? std::min<int>(opt.limit, int(task.docs.size())) : int(task.docs.size());
    std::vector<double> acc, acc_norm;
    for (int i = 0; i < n; i++) {
        const McDoc& d = task.docs[i];
        std::vector<TokenRequest> reqs;
        try {
            for (const auto& tr : doc_requests(task, i, opt.shots, opt.seed))
                reqs.push_back(encode_request(tok, tr));
        } catch (const Error& e) {
            fail(task.path, ":", d.line, ": ", e.what());
        }
        std::vector<double> lls = scorer.loglikelihood(reqs);
        DocScore s = score_doc(lls, d.choice_texts, d.gold);
        acc.push_back(s.acc);
        acc_norm.push_back(s.acc_norm);
        r.docs.push_back(s);
        r.lls.push_back(std::move(lls));
        r.requests += static_cast<long long>(reqs.size());
        if (progress) progress(i + 1, n);
    }
    r.num_docs = n;
    r.acc = mean_stderr(acc);
    r.acc_norm = mean_stderr(acc_norm);
    r.elapsed_s = seconds_since(t0);
    return r;
}

}  // namespace t6::eval
