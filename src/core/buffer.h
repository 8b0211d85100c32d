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
    ~AlignedArray() { std::free(data_); }

    // Reallocates to n elements, all zero (contents are not preserved). With huge_pages, an
    // allocation of 2 MiB or more is 2 MiB aligned and asks Linux for transparent huge pages
    // before it is touched (this machine has THP in "madvise" mode): buffers that are streamed
    // (the KV cache, decoding weights, the training parameters, gradients, optimizer moments
    // and activations) then cost far fewer TLB misses, the hardware prefetchers are not stopped
    // at every 4 KiB page, and first touching them costs a fault per 2 MiB.
    void resize(size_t n, bool huge_pages = false) {
        std::free(data_);
        data_ = nullptr;
        size_ = 0;
        if (n == 0) return;
        size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
        size_t align = 64;
        if (huge_pages && bytes >= kHugePage) {
            align = kHugePage;
            bytes = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        }
        data_ = static_cast<T*>(std::aligned_alloc(align, bytes));
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
    }

  private:
    static constexpr size_t kHugePage = size_t(2) << 20;
    T* data_ = nullptr;
    size_t size_ = 0;
};

using FloatBuffer = AlignedArray<float>;

}  // namespace t6
