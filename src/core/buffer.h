// A 64-byte aligned, zero-initialised float array that owns its memory (parameters, gradients,
// optimizer state and activations each live in one such buffer, with views into it).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace t6 {

namespace detail {
// Buffers below 2 MiB that ask for huge pages are cut from shared 2 MiB-aligned slabs on
// transparent huge pages (core/buffer.cpp), packed one after another in the order they are
// allocated. A decoding step streams some sixty such matrices (a paper-small model's q8 layer
// weights are 0.7-1.7 MB each): on 4 KiB pages every page cost a TLB miss and stopped the
// hardware prefetchers, and with the attention's cache stream between layers the page walks
// missed the caches too. A slab is freed when its last buffer is. Under AddressSanitizer the
// buffers stay separate allocations, so that an overflow is still caught at the buffer's end.
inline constexpr size_t kHugePage = size_t(2) << 20;  // a transparent huge page (x86-64)
void* huge_slab_alloc(size_t bytes);  // below kHugePage, 64-byte aligned; else or off: nullptr
void huge_slab_free(void* p);
bool huge_slabs_enabled();  // false under AddressSanitizer
size_t huge_slab_count();   // slabs held now (tests)
}  // namespace detail

template <typename T>
class AlignedArray {
  public:
    AlignedArray() = default;
    explicit AlignedArray(size_t n) { resize(n); }
    AlignedArray(const AlignedArray&) = delete;
    AlignedArray& operator=(const AlignedArray&) = delete;
    AlignedArray(AlignedArray&& o) noexcept { swap(o); }
    AlignedArray& operator=(AlignedArray&& o) noexcept {
        swap(o);
        return *this;
    }
    ~AlignedArray() { release(); }

    // Reallocates to n elements, all zero (contents are not preserved). With huge_pages, an
    // allocation of 2 MiB or more is 2 MiB aligned and asks Linux for transparent huge pages
    // before it is touched (this machine has THP in "madvise" mode), and a smaller one is cut
    // from a slab on huge pages (detail::huge_slab_alloc): buffers that are streamed (the KV
    // cache, decoding weights, the training parameters, gradients, optimizer moments and
    // activations) then cost far fewer TLB misses, the hardware prefetchers are not stopped at
    // every 4 KiB page, and first touching them costs a fault per 2 MiB.
    void resize(size_t n, bool huge_pages = false) {
        release();
        if (n == 0) return;
        size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        size_t align = 64;
        if (huge_pages && bytes >= kHugePage) {
            align = kHugePage;
            bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        } else if (huge_pages) {
            data_ = static_cast<T*>(detail::huge_slab_alloc(bytes));
            slab_ = data_ != nullptr;
        }
        if (!data_) data_ = static_cast<T*>(std::aligned_alloc(align, bytes));
        if (!data_) throw std::bad_alloc();
#ifdef __linux__
        if (align == kHugePage) madvise(static_cast<void*>(data_), bytes, MADV_HUGEPAGE);
#endif
        std::memset(static_cast<void*>(data_), 0, bytes);
        size_ = n;
    }
    void zero() {
        if (size_) std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T));
    }
    T* data() {
        return data_;
    }
    const T* data() const {
        return data_;
    }
    size_t size() const {
        return size_;
    }
    T& operator[](size_t i) {
        return data_[i];
    }
    const T& operator[](size_t i) const {
        return data_[i];
    }
    void swap(AlignedArray& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
        std::swap(slab_, o.slab_);
    }

  private:
    static constexpr size_t kHugePage = detail::kHugePage;
    void release() {
        if (slab_)
            detail::huge_slab_free(data_);
        else
            std::free(data_);
        data_ = nullptr;
        size_ = 0;
        slab_ = false;
    }
    T* data_ = nullptr;
    size_t size_ = 0;
    bool slab_ = false;  // data_ was cut from a huge-page slab
};

using FloatBuffer = AlignedArray<float>;

}  // namespace t6
