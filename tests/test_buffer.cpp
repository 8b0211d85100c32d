// AlignedArray (core/buffer.h): alignment, zero fill and ownership, and the huge-page slabs that
// buffers below 2 MiB asking for huge pages are cut from (packed in allocation order, a slab
// returned once its last buffer is freed; off under AddressSanitizer).
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "core/buffer.h"

using namespace t6;

namespace {

bool aligned64(const void* p) {
    return reinterpret_cast<uintptr_t>(p) % 64 == 0;
}

bool all_zero(const AlignedArray<float>& a) {
    for (size_t i = 0; i < a.size(); i++)
        if (a[i] != 0.0f) return false;
    return true;
}

}  // namespace

TEST(AlignedArray, SmallAndLargeBuffersAreAlignedZeroedAndDisjoint) {
    // Sizes below and above 2 MiB, with and without huge pages, enough of them to fill several
    // slabs (1.5 MB each: five to a 16 MiB slab), written end to end.
    std::vector<AlignedArray<float>> bufs;
    const size_t sizes[] = {1, 15, 4096, 375000, 600000};
    for (int round = 0; round < 6; round++)
        for (size_t n : sizes)
            for (bool huge : {false, true}) {
                bufs.emplace_back();
                bufs.back().resize(n, huge);
            }
    for (auto& b : bufs) {
        ASSERT_TRUE(aligned64(b.data()));
        ASSERT_TRUE(all_zero(b));
    }
    for (size_t k = 0; k < bufs.size(); k++)
        for (size_t i = 0; i < bufs[k].size(); i++) bufs[k][i] = float(k);
    for (size_t k = 0; k < bufs.size(); k++) {
        EXPECT_EQ(bufs[k][0], float(k)) << "buffer " << k;
        EXPECT_EQ(bufs[k][bufs[k].size() - 1], float(k)) << "buffer " << k;
    }
}

TEST(AlignedArray, MovesAndResizesKeepOwnershipRight) {
    AlignedArray<float> a;
    a.resize(1000, true);
    a[999] = 3.0f;
    AlignedArray<float> b(std::move(a));
    EXPECT_EQ(a.size(), 0u);
    ASSERT_EQ(b.size(), 1000u);
    EXPECT_EQ(b[999], 3.0f);
    AlignedArray<float> c;
    c.resize(10);  // a plain allocation swapped with a slab buffer
    c = std::move(b);
    ASSERT_EQ(c.size(), 1000u);
    EXPECT_EQ(c[999], 3.0f);
    c.resize(2000, true);  // frees the slab buffer, takes another, zeroed
    EXPECT_TRUE(all_zero(c));
    c.resize(0);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.data(), nullptr);
}

TEST(HugeSlabs, PackBuffersInOrderAndReturnEmptySlabs) {
    if (!detail::huge_slabs_enabled()) GTEST_SKIP() << "slabs are off under AddressSanitizer";
    const size_t before = detail::huge_slab_count();
    {
        // Consecutive small huge-page buffers lie back to back (sizes rounded to 64 bytes)...
        AlignedArray<uint8_t> x, y;
        x.resize(1000, true);
        y.resize(64, true);
        EXPECT_EQ(y.data(), x.data() + 1024);
        // ...until a slab is full: 40 buffers of 1 MiB take at least three 16 MiB slabs.
        std::vector<AlignedArray<uint8_t>> many(40);
        for (auto& m : many) m.resize(size_t(1) << 20, true);
        EXPECT_GE(detail::huge_slab_count(), before + 2);
        for (size_t k = 1; k < many.size(); k++) {
            const uint8_t* p = many[k - 1].data();
            const uint8_t* q = many[k].data();
            EXPECT_TRUE(q == p + (size_t(1) << 20) || q >= p + (size_t(16) << 20) ||
                        q + (size_t(1) << 20) <= p)
                << "buffer " << k << " neither follows the one before nor lies in another slab";
        }
    }
    // Every buffer freed: at most the newest slab is kept, emptied for reuse.
    EXPECT_LE(detail::huge_slab_count(), before + 1);
}
