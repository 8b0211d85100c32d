// A benchmark's list of SIMD dispatch targets to run (--targets of t6 bench kernels and t6 bench
// decode): "all" (every target this CPU and build can run) or a comma-separated list of target
// names (core/simd.h), each of which must run here, and "now" (the target in force: the best one,
// or T6_SIMD's cap), e.g. "avx2,now". The benchmark sets each in turn with ScopedSimdTarget.
#pragma once
#include <string>
#include <vector>

#include "core/simd.h"

namespace t6::cli {

// The targets `s` names, in its order without repeats; a one-line error starting with `where`
// (e.g. "t6 bench kernels: --targets") for an unknown name, an empty list or a target that does
// not run on this machine (the message lists those that do).
std::vector<SimdTarget> parse_simd_targets_arg(const std::string& s, const std::string& where);

}  // namespace t6::cli
