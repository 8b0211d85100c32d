// Figures of another implementation to compare a benchmark with (the official PyTorch code's
// tokens/s on one machine kind). They are measurements, not code: they live in a JSON file
// (bench/official-pytorch-cpu.json in the repository) that `t6 bench step|train --peers FILE`
// reads, so a new measurement or another machine changes a data file, not the binary.
//
// File format: an object with one array per benchmark ("step", "train"), each entry
// {"preset": NAME, "batch": B, "seq": T, "tokens_per_s": X}; other keys (provenance) are ignored.
#pragma once
#include <string>
#include <vector>

namespace t6::study {

struct PeerFigure {
    std::string preset;
    int batch = 0, seq = 0;
    double tokens_per_s = 0;
};

// The figures listed for `benchmark` in the file at `path` (none when it lists none); a one-line
// error naming the file and entry when it is unreadable or malformed.
std::vector<PeerFigure> read_peer_figures(const std::string& path, const std::string& benchmark);

}  // namespace t6::study
