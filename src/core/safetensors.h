// Reading and writing safetensors files (https://huggingface.co/docs/safetensors):
// 8-byte little-endian header length N, N bytes of JSON header
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [...],
//    "data_offsets": [begin, end]}, ...}
// then the raw little-endian tensor data; offsets are relative to the end of the header.
// Every malformed input raises t6::Error with a one-line message naming the file and the problem.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace t6 {

enum class DType { F32, I32, BF16, U16, I64, F16, U8 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    size_t begin = 0, end = 0;  // byte offsets into the data section
    int64_t numel() const;
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[2, 16, 64]"

class SafeTensorsReader {
  public:
    // Reads and validates the whole file (header JSON, dtypes, shapes, offsets within the file,
    // byte sizes equal to numel * dtype size, no overlapping tensors).
    explicit SafeTensorsReader(const std::string& path);

    const std::string& path() const { return path_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    bool has(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;  // fails naming the missing tensor

    // Copies tensor `name` into dst as float32 (F32 as is; BF16/F16/I32 converted). If `shape` is
    // non-empty it must equal the stored shape, otherwise the error names both shapes.
    void read_f32(const std::string& name, float* dst,
                  const std::vector<int64_t>& shape = {}) const;
    std::vector<float> read_f32(const std::string& name) const;
    std::vector<int32_t> read_i32(const std::string& name) const;  // I32 (or I64 narrowed)
    // The stored bytes of tensor `name` as they are (any dtype; numel * dtype size of them).
    const unsigned char* raw(const std::string& name) const { return data_of(info(name)); }

  private:
    const unsigned char* data_of(const TensorInfo& t) const;
    std::string path_;
    std::vector<unsigned char> bytes_;  // whole file
    size_t data_start_ = 0;
    std::map<std::string, std::string> metadata_;
    std::vector<TensorInfo> tensors_;
};

// One tensor to write: data points at numel(shape) elements of dtype.
struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
};

// Writes a safetensors file atomically (temporary file in the same folder, fsync, rename): a
// reader never sees a half-written file under `path`. Tensors are stored sorted by name; the
// header is padded with spaces to a multiple of 8 bytes.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace t6
