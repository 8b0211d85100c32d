#include "core/threads.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace t6 {

int available_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? int(n) : 1;
}

long long check_thread_count(long long n, const std::string& what, bool zero_means_all) {
    const int cpus = available_cpus();
    if (n == 0 && zero_means_all) return n;
    if (n < 1 || n > cpus)
        fail(what, " = ", n, ": must be between 1 and ", cpus, " (the CPUs this process may use)",
             zero_means_all ? ", or 0 for all of them" : "");
    return n;
}

void set_num_threads(int n) {
    if (n == 0) return;
    omp_set_num_threads(int(check_thread_count(n, "threads")));
}

int num_threads() {
    return omp_get_max_threads();
}

void ensure_wait_policy(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
    if (const char* a = std::getenv("T6_OMP_ACTIVE"); a && std::string(a) == "1") return;
    if (setenv("GOMP_SPINCOUNT", std::to_string(kBriefSpinCount).c_str(), 1) != 0) return;
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): carry on with the runtime's default policy.
    unsetenv("GOMP_SPINCOUNT");
}

std::string omp_wait_policy() {
    const char* p = std::getenv("OMP_WAIT_POLICY");
    if (!p) {
        const char* n = std::getenv("GOMP_SPINCOUNT");
        return n ? "spin " + std::string(n) + " then sleep" : "default";
    }
    std::string s(p);
    for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace t6
