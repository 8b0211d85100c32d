#include "core/sysinfo.h"

#include <sys/resource.h>

namespace t6 {

double peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) * 1024.0;  // Linux reports KiB
}

}  // namespace t6
