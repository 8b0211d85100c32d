// The huge-page slabs of AlignedArray (core/buffer.h): buffers below 2 MiB that ask for huge
// pages are bump-allocated, 64-byte aligned, from 16 MiB slabs (2 MiB aligned, madvise'd for
// transparent huge pages). Only the pages a buffer touches become resident (its zero-fill
// touches them), so a slab costs memory in 2 MiB steps as it fills. Freed space is not reused
// until every buffer of the slab is freed; then the slab is returned (or, the newest one,
// emptied for reuse).
#include "core/buffer.h"

#include <cstdint>
#include <map>
#include <mutex>

namespace t6::detail {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSlabs = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSlabs = false;
#else
constexpr bool kSlabs = true;
#endif
#else
constexpr bool kSlabs = true;
#endif

constexpr size_t kSlabBytes = 8 * kHugePage;

struct Slab {
    size_t used = 0;  // bytes handed out from the start
    size_t live = 0;  // buffers not yet freed
};

struct Slabs {
    std::mutex mu;
    std::map<char*, Slab> by_base;                           // slab start -> state
    std::map<char*, Slab>::iterator newest = by_base.end();  // where new buffers are cut
};

Slabs& slabs() {
    static Slabs* s = new Slabs;  // never destroyed: buffers may be freed during exit
    return *s;
}

}  // namespace

bool huge_slabs_enabled() {
    return kSlabs;
}

size_t huge_slab_count() {
    Slabs& s = slabs();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.by_base.size();
}

void* huge_slab_alloc(size_t bytes) {
    if (!kSlabs || bytes == 0 || bytes >= kHugePage) return nullptr;
    bytes = (bytes + 63) / 64 * 64;
    Slabs& s = slabs();
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.newest == s.by_base.end() || s.newest->second.used + bytes > kSlabBytes) {
        char* base = static_cast<char*>(std::aligned_alloc(kHugePage, kSlabBytes));
        if (!base) return nullptr;
#ifdef __linux__
        madvise(base, kSlabBytes, MADV_HUGEPAGE);
#endif
        // The previous newest slab, if already empty, is returned now.
        if (s.newest != s.by_base.end() && s.newest->second.live == 0) {
            std::free(s.newest->first);
            s.by_base.erase(s.newest);
        }
        s.newest = s.by_base.emplace(base, Slab{}).first;
    }
    Slab& slab = s.newest->second;
    void* p = s.newest->first + slab.used;
    slab.used += bytes;
    slab.live++;
    return p;
}

void huge_slab_free(void* p) {
    if (!p) return;
    Slabs& s = slabs();
    std::lock_guard<std::mutex> lock(s.mu);
    char* c = static_cast<char*>(p);
    auto it = s.by_base.upper_bound(c);
    if (it == s.by_base.begin()) return;  // not from a slab (cannot happen)
    --it;
    if (--it->second.live > 0) return;
    if (it == s.newest) {
        it->second.used = 0;  // kept for the next buffers
    } else {
        std::free(it->first);
        s.by_base.erase(it);
    }
}

}  // namespace t6::detail
