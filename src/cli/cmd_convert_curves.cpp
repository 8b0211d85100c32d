// t6 convert curves: validation-loss curves of several `t6 train` runs (their metrics.jsonl) in
// one SVG (the study's chart writer), each run shifted by the tokens it started from (a recovery
// run after a pretraining run starts at the pretraining's tokens), and for each run the first
// token count at which its validation loss comes within --within of a target loss.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "study/svg_plot.h"

namespace fs = std::filesystem;

namespace t6::cli {

namespace {

struct Curve {
    std::string label, dir;
    double offset = 0;
    std::vector<double> tokens, val;
};

// "LABEL=RUN_DIR" or "LABEL=RUN_DIR@OFFSET_TOKENS".
Curve parse_curve(const std::string& arg) {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0)
        fail("t6 convert curves: '", arg, "' is not LABEL=RUN_DIR[@OFFSET_TOKENS]");
    Curve c;
    c.label = arg.substr(0, eq);
    c.dir = arg.substr(eq + 1);
    if (const size_t at = c.dir.rfind('@'); at != std::string::npos) {
        try {
            c.offset = std::stod(c.dir.substr(at + 1));
        } catch (const std::exception&) {
            fail("t6 convert curves: '", arg, "': the offset after @ is not a number");
        }
        c.dir = c.dir.substr(0, at);
    }
    const fs::path m = fs::path(c.dir) / "metrics.jsonl";
    if (!fs::exists(m)) fail("t6 convert curves: ", m.string(), " does not exist");
    std::ifstream f(m);
    std::string line;
    double tokens_per_step = 0;
    std::vector<std::pair<double, double>> evals;  // (step, val loss)
    while (std::getline(f, line)) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) fail("t6 convert curves: ", m.string(), ": a line is not JSON");
        if (j.value("kind", "") == "train" && j.contains("tokens") && j.value("step", 0) > 0)
            tokens_per_step = j["tokens"].get<double>() / j["step"].get<double>();
        if (j.value("kind", "") == "eval" && j.contains("val_loss") && j["val_loss"].is_number())
            evals.push_back({j["step"].get<double>(), j["val_loss"].get<double>()});
    }
    for (const auto& [step, v] : evals) {
        c.tokens.push_back(c.offset + step * tokens_per_step);
        c.val.push_back(v);
    }
    return c;
}

}  // namespace

int cmd_convert_curves(int argc, char** argv) {
    ArgParser p("convert curves", "LABEL=RUN_DIR[@OFFSET_TOKENS]... --out FILE.svg [options]",
                "Plots the validation loss of `t6 train` runs against tokens (one SVG) and "
                "reports, per run, its last validation loss and the first token count (offset "
                "included) at which it comes within --within of --target.");
    p.option("out", "FILE", "output SVG file");
    p.option("title", "TEXT", "chart title", "validation loss");
    p.option("target", "LOSS", "reference loss (e.g. the source model's); 0: none", "0");
    p.option("within", "F", "relative margin to the target", "0.01");
    p.option("y-max", "LOSS", "clip the y axis at this loss (0: the data's range)", "0");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.positionals().empty()) fail("t6 convert curves: give at least one LABEL=RUN_DIR");
    if (!p.has("out")) fail("t6 convert curves: --out FILE.svg is required");
    const double target = p.get_double("target"), within = p.get_double("within");
    std::vector<Curve> curves;
    for (const auto& a : p.positionals()) curves.push_back(parse_curve(a));
    study::PlotPanel all{"validation loss", "tokens (pretraining + recovery)", "loss", {}};
    study::PlotPanel zoom{"validation loss near the target", "tokens", "loss", {}};
    nlohmann::json runs = nlohmann::json::array();
    double y_lo = 1e30;
    for (size_t i = 0; i < curves.size(); i++) {
        const Curve& c = curves[i];
        study::PlotSeries s{c.label, study::plot_color(i), c.tokens, c.val};
        s.markers = c.tokens.size() <= 40;
        all.series.push_back(s);
        zoom.series.push_back(s);
        nlohmann::json r = {{"label", c.label}, {"dir", c.dir}, {"offset_tokens", c.offset}};
        if (!c.val.empty()) {
            r["final_val_loss"] = c.val.back();
            r["final_tokens"] = c.tokens.back();
            double best = c.val[0];
            for (double v : c.val) best = std::min(best, v);
            r["best_val_loss"] = best;
            y_lo = std::min(y_lo, best);
        }
        if (target > 0) {
            r["tokens_to_within"] = nullptr;
            for (size_t k = 0; k < c.val.size(); k++)
                if (c.val[k] <= target * (1 + within)) {
                    r["tokens_to_within"] = c.tokens[k];
                    r["tokens_to_within_after_offset"] = c.tokens[k] - c.offset;
                    break;
                }
        }
        runs.push_back(r);
    }
    if (target > 0) {
        double x0 = 1e300, x1 = 0;
        for (const auto& c : curves)
            if (!c.tokens.empty()) {
                x0 = std::min(x0, c.tokens.front());
                x1 = std::max(x1, c.tokens.back());
            }
        study::PlotSeries t{"target +" + std::to_string(int(std::lround(within * 100))) + "%",
                            "#444444",
                            {x0, x1},
                            {target * (1 + within), target * (1 + within)}};
        t.dashed = true;
        zoom.series.push_back(t);
        zoom.y_min = std::min(y_lo, target) - 0.02;
        zoom.y_max = target * (1 + 6 * within);
    }
    if (p.get_double("y-max") > 0) {
        all.y_min = std::min(y_lo, target > 0 ? target : y_lo) - 0.05;
        all.y_max = p.get_double("y-max");
    }
    std::vector<study::PlotPanel> panels = {all};
    if (target > 0) panels.push_back(zoom);
    write_file_atomic(p.get("out"), study::svg_line_chart(p.get("title"), panels));
    for (const auto& r : runs)
        std::printf("%-28s final val %.4f  within %.0f%% of %.4f at %s tokens\n",
                    r["label"].get<std::string>().c_str(), r.value("final_val_loss", 0.0),
                    within * 100, target,
                    target > 0 && !r["tokens_to_within"].is_null()
                        ? std::to_string((long long)r["tokens_to_within"].get<double>()).c_str()
                        : "-");
    if (p.has("json"))
        std::printf("%s\n", nlohmann::json({{"out", p.get("out")},
                                            {"target_loss", target},
                                            {"within", within},
                                            {"runs", runs}})
                                .dump()
                                .c_str());
    return 0;
}

}  // namespace t6::cli
