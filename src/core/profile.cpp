#include "core/profile.h"

#include <mutex>

namespace t6::profile {

namespace {
bool g_enabled = false;
std::mutex g_mu;
std::vector<Entry> g_entries;
}  // namespace

bool enabled() {
    return g_enabled;
}
void set_enabled(bool on) {
    g_enabled = on;
}

void add(const char* name, double seconds) {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto& e : g_entries)
        if (e.name == name) {
            e.seconds += seconds;
            e.calls++;
            return;
        }
    g_entries.push_back({name, seconds, 1});
}

void reset() {
    std::lock_guard<std::mutex> lock(g_mu);
    g_entries.clear();
}

std::vector<Entry> entries() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_entries;
}

}  // namespace t6::profile
