#include "study/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace t6::study {

namespace {

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&':
                o += "&amp;";
                break;
            case '<':
                o += "&lt;";
                break;
            case '>':
                o += "&gt;";
                break;
            case '"':
                o += "&quot;";
                break;
            default:
                o += c;
        }
    }
    return o;
}

std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
    std::vector<double> t;
    if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
    const double raw = (hi - lo) / std::max(1, target);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * mag >= raw) {
            step = m * mag;
            break;
        }
    const long long k0 = (long long)std::ceil(lo / step - 1e-9);
    for (long long k = k0; double(k) * step <= hi + step * 1e-9; k++) t.push_back(double(k) * step);
    return t;
}

std::string tick_label(double v, double step, double axis_max) {
    char b[32];
    if (v == 0) return "0";
    const double a = std::max({std::abs(axis_max), std::abs(v), std::abs(step)});
    if (a >= 1e9) {
        std::snprintf(b, sizeof b, "%gG", v / 1e9);
    } else if (a >= 1e6) {
        std::snprintf(b, sizeof b, "%gM", v / 1e6);
    } else if (a >= 1e4) {
        std::snprintf(b, sizeof b, "%gk", v / 1e3);
    } else {
        int dec = 0;
        while (dec < 6 &&
               std::abs(step * std::pow(10.0, dec) - std::round(step * std::pow(10.0, dec))) > 1e-6)
            dec++;
        std::snprintf(b, sizeof b, "%.*f", dec, v);
    }
    return b;
}

std::string plot_color(size_t i) {
    static const char* k[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                              "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return k[i % 10];
}

std::string svg_line_chart(const std::string& title, const std::vector<PlotPanel>& panels,
                           int panel_width, int panel_height) {
    const int margin_l = 62, margin_r = 16, margin_t = 52, margin_b = 48, legend_h = 28;
    const int W = int(panels.size()) * panel_width, H = panel_height + legend_h;
    std::ostringstream o;
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" viewBox=\"0 0 " << W << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" "
      << "font-weight=\"bold\">" << xml_escape(title) << "</text>\n";

    for (size_t p = 0; p < panels.size(); p++) {
        const PlotPanel& pn = panels[p];
        const double ox = double(p) * panel_width;
        const double x0 = ox + margin_l, x1 = ox + panel_width - margin_r;
        const double y0 = margin_t, y1 = panel_height - margin_b;  // top, bottom in pixels
        double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
        double ymin = xmin, ymax = -xmin;
        for (const auto& s : pn.series)
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
                if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
                xmin = std::min(xmin, s.x[i]);
                xmax = std::max(xmax, s.x[i]);
                ymin = std::min(ymin, s.y[i]);
                ymax = std::max(ymax, s.y[i]);
            }
        if (pn.y_max > pn.y_min) {
            ymin = pn.y_min;
            ymax = pn.y_max;
        }
        if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
        if (!(xmax > xmin)) xmax = xmin + 1;
        if (!(ymax > ymin)) ymin -= 0.5, ymax += 0.5;
        const double ypad = 0.04 * (ymax - ymin);
        if (!(pn.y_max > pn.y_min)) ymin -= ypad, ymax += ypad;
        if (xmin > 0 && xmin < 0.1 * xmax) xmin = 0;
        auto px = [&](double v) { return x0 + (v - xmin) / (xmax - xmin) * (x1 - x0); };
        auto py = [&](double v) { return y1 - (v - ymin) / (ymax - ymin) * (y1 - y0); };

        o << "<g>\n<text x=\"" << num((x0 + x1) / 2) << "\" y=\"" << margin_t - 12
          << "\" text-anchor=\"middle\" font-size=\"13\">" << xml_escape(pn.title) << "</text>\n";
        const auto xt = nice_ticks(xmin, xmax, 5), yt = nice_ticks(ymin, ymax, 6);
        const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1,
                     ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
        for (double v : xt) {
            o << "<line x1=\"" << num(px(v)) << "\" y1=\"" << num(y0) << "\" x2=\"" << num(px(v))
              << "\" y2=\"" << num(y1) << "\" stroke=\"#e5e5e5\"/>\n"
              << "<text x=\"" << num(px(v)) << "\" y=\"" << num(y1 + 16)
              << "\" text-anchor=\"middle\">"
              << tick_label(v, xstep, std::max(std::abs(xt.front()), std::abs(xt.back())))
              << "</text>\n";
        }
        for (double v : yt) {
            o << "<line x1=\"" << num(x0) << "\" y1=\"" << num(py(v)) << "\" x2=\"" << num(x1)
              << "\" y2=\"" << num(py(v)) << "\" stroke=\"#e5e5e5\"/>\n"
              << "<text x=\"" << num(x0 - 6) << "\" y=\"" << num(py(v) + 4)
              << "\" text-anchor=\"end\">"
              << tick_label(v, ystep, std::max(std::abs(yt.front()), std::abs(yt.back())))
              << "</text>\n";
        }
        o << "<rect x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(x1 - x0)
          << "\" height=\"" << num(y1 - y0) << "\" fill=\"none\" stroke=\"#333\"/>\n"
          << "<text x=\"" << num((x0 + x1) / 2) << "\" y=\"" << num(y1 + 34)
          << "\" text-anchor=\"middle\">" << xml_escape(pn.x_label) << "</text>\n"
          << "<text transform=\"translate(" << num(ox + 16) << "," << num((y0 + y1) / 2)
          << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(pn.y_label) << "</text>\n";
        // Series, clipped to the plot area.
        o << "<clipPath id=\"clip" << p << "\"><rect x=\"" << num(x0) << "\" y=\"" << num(y0)
          << "\" width=\"" << num(x1 - x0) << "\" height=\"" << num(y1 - y0)
          << "\"/></clipPath>\n<g clip-path=\"url(#clip" << p << ")\">\n";
        for (const auto& s : pn.series) {
            std::ostringstream pts;
            size_t n = 0;
            for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
                if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
                pts << (n++ ? " " : "") << num(px(s.x[i])) << "," << num(py(s.y[i]));
            }
            o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"1.6\""
              << (s.dashed ? " stroke-dasharray=\"5,3\"" : "") << " points=\"" << pts.str()
              << "\"><title>" << xml_escape(s.label) << "</title></polyline>\n";
            if (s.markers)
                for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++)
                    if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
                        o << "<circle cx=\"" << num(px(s.x[i])) << "\" cy=\"" << num(py(s.y[i]))
                          << "\" r=\"2.5\" fill=\"" << s.color << "\"/>\n";
        }
        o << "</g>\n</g>\n";
    }
    // Legend: the labels of the first panel's series, in one row under the panels.
    if (!panels.empty()) {
        const auto& ser = panels[0].series;
        const double slot = ser.empty() ? 0 : std::min(150.0, double(W - 40) / double(ser.size()));
        double x = (W - slot * double(ser.size())) / 2;
        const double y = panel_height + 8;
        for (const auto& s : ser) {
            o << "<line x1=\"" << num(x) << "\" y1=\"" << num(y) << "\" x2=\"" << num(x + 24)
              << "\" y2=\"" << num(y) << "\" stroke=\"" << s.color << "\" stroke-width=\"3\""
              << (s.dashed ? " stroke-dasharray=\"5,3\"" : "") << "/>\n"
              << "<text x=\"" << num(x + 30) << "\" y=\"" << num(y + 4) << "\">"
              << xml_escape(s.label) << "</text>\n";
            x += slot;
        }
    }
    o << "</svg>\n";
    return o.str();
}

}  // namespace t6::study
