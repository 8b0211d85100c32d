// Facts about the running process.
#pragma once

namespace t6 {

// Peak resident set size of this process so far, in bytes (getrusage ru_maxrss).
double peak_rss_bytes();

}  // namespace t6
