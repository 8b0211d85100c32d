// A self-contained SVG line chart (no dependencies): one or more panels side by side, each with
// axes, "nice" ticks, a grid and one polyline per series; a legend shared by all panels. Used by
// `t6 study` for its loss curves; any browser or image viewer shows the file.
#pragma once
#include <string>
#include <vector>

namespace t6::study {

struct PlotSeries {
    std::string label;
    std::string color;  // CSS colour, e.g. "#1f77b4"
    std::vector<double> x, y;
    bool dashed = false;
    bool markers = false;  // a small circle at every point
};

struct PlotPanel {
    std::string title, x_label, y_label;
    std::vector<PlotSeries> series;
    // Optional y range; when y_min >= y_max the range covers the data.
    double y_min = 0, y_max = 0;
};

// The SVG document of `panels` laid out left to right under `title`.
std::string svg_line_chart(const std::string& title, const std::vector<PlotPanel>& panels,
                           int panel_width = 420, int panel_height = 320);

// Tick positions covering [lo, hi] at a 1/2/5 x 10^k step, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// "1.5M", "250k", "1.25" -- short tick labels; the unit (k, M, G) follows the axis's largest
// absolute tick, so every label of an axis has the same unit.
std::string tick_label(double v, double step, double axis_max = 0);

// The colour of series i in t6's plots (the ten-colour Tableau palette).
std::string plot_color(size_t i);

}  // namespace t6::study
