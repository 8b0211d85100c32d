#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file_util.h"

namespace t6 {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts are not supported");

namespace {

using json = nlohmann::json;

// Headers larger than this are rejected as corrupt rather than allocated and parsed.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeName {
    DType type;
    const char* name;
    size_t size;
};
constexpr DTypeName kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::I32, "I32", 4}, {DType::BF16, "BF16", 2},
    {DType::U16, "U16", 2}, {DType::I64, "I64", 8}, {DType::F16, "F16", 2},
    {DType::U8, "U8", 1},
};

bool parse_dtype(const std::string& s, DType* out) {
    for (const DTypeName& d : kDTypes) {
        if (s == d.name) {
            *out = d.type;
            return true;
        }
    }
    return false;
}

// numel of a shape, or false on overflow of int64 (a zero dimension gives 0 regardless).
bool checked_numel(const std::vector<int64_t>& shape, int64_t* out) {
    for (int64_t d : shape) {
        if (d < 0) return false;
        if (d == 0) {
            *out = 0;
            return true;
        }
    }
    int64_t n = 1;
    for (int64_t d : shape) {
        if (__builtin_mul_overflow(n, d, &n)) return false;
    }
    *out = n;
    return true;
}

// A JSON value as a non-negative integer that fits in int64.
bool as_index(const json& v, uint64_t* out) {
    if (v.is_number_unsigned()) {
        *out = v.get<uint64_t>();
    } else if (v.is_number_integer()) {
        int64_t x = v.get<int64_t>();
        if (x < 0) return false;
        *out = uint64_t(x);
    } else {
        return false;
    }
    return *out <= uint64_t(std::numeric_limits<int64_t>::max());
}

float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24, exact in float.
        float v = float(mant) * 5.9604644775390625e-8f;
        bits = std::bit_cast<uint32_t>(v) | sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf or nan (payload kept)
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(bits);
}

// Short printable excerpt of an untrusted key for error messages (one line, bounded length).
std::string printable(const std::string& s, size_t max_len = 80) {
    std::string out;
    for (char c : s) {
        if (out.size() >= max_len) {
            out += "...";
            break;
        }
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    return out;
}

}  // namespace

const char* dtype_name(DType t) {
    for (const DTypeName& d : kDTypes)
        if (d.type == t) return d.name;
    return "?";
}

size_t dtype_size(DType t) {
    for (const DTypeName& d : kDTypes)
        if (d.type == t) return d.size;
    return 0;
}

int64_t TensorInfo::numel() const {
    // Unsigned arithmetic: never undefined, even for an unvalidated shape.
    uint64_t n = 1;
    for (int64_t d : shape) n *= uint64_t(d);
    return int64_t(n);
}

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

// ---------------------------------------------------------------------------------------------
// Reading

SafeTensorsReader::SafeTensorsReader(const std::string& path) : path_(path) {
    bytes_ = read_file_bytes(path);
    const size_t size = bytes_.size();
    if (size < 8)
        fail(path, ": file is ", size,
             " bytes, too short for the 8-byte header length (truncated or not a safetensors "
             "file)");
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes_[size_t(i)];
    if (n > size - 8)
        fail(path, ": header length ", n, " exceeds file size ", size,
             " (truncated or not a safetensors file)");
    if (n > kMaxHeaderBytes)
        fail(path, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
             " bytes (corrupt or not a safetensors file)");
    data_start_ = 8 + size_t(n);
    const size_t data_size = size - data_start_;

    // Parse the header, noting duplicate top-level keys (nlohmann would silently keep the last)
    // and refusing deep nesting (a valid header nests 3 levels; discarded values cost no memory).
    constexpr int kMaxDepth = 16;
    std::string duplicate;
    bool too_deep = false;
    std::set<std::string> seen;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
        if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
            const std::string& k = parsed.get_ref<const std::string&>();
            if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
        }
        if ((ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) &&
            depth > kMaxDepth) {
            too_deep = true;
            return false;
        }
        return true;
    };
    json header;
    try {
        header = json::parse(bytes_.begin() + 8, bytes_.begin() + std::ptrdiff_t(data_start_), cb,
                             /*allow_exceptions=*/true);
    } catch (const json::exception& e) {
        fail(path, ": header is not valid JSON (", printable(e.what(), 300), ")");
    }
    if (too_deep) fail(path, ": header JSON nests deeper than ", kMaxDepth, " levels");
    if (!header.is_object())
        fail(path, ": header JSON is a ", header.type_name(), ", expected an object");
    if (!duplicate.empty()) fail(path, ": header has duplicate key '", printable(duplicate), "'");

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const json& v = it.value();
        const std::string pname = printable(name);
        if (name == "__metadata__") {
            if (!v.is_object())
                fail(path, ": __metadata__ is a ", v.type_name(),
                     ", expected an object of strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    fail(path, ": __metadata__ value for '", printable(m.key()), "' is a ",
                         m.value().type_name(), ", expected a string");
                metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (!v.is_object())
            fail(path, ": tensor '", pname, "' entry is a ", v.type_name(), ", expected an object");
        auto dt = v.find("dtype");
        auto sh = v.find("shape");
        auto of = v.find("data_offsets");
        if (dt == v.end()) fail(path, ": tensor '", pname, "' has no dtype");
        if (sh == v.end()) fail(path, ": tensor '", pname, "' has no shape");
        if (of == v.end()) fail(path, ": tensor '", pname, "' has no data_offsets");

        TensorInfo t;
        t.name = name;
        if (!dt->is_string())
            fail(path, ": tensor '", pname, "' dtype is a ", dt->type_name(),
                 ", expected a string");
        if (!parse_dtype(dt->get_ref<const std::string&>(), &t.dtype))
            fail(path, ": tensor '", pname, "' has unsupported dtype '",
                 printable(dt->get_ref<const std::string&>()),
                 "' (expected F32, I32, BF16, F16, U16, I64 or U8)");

        if (!sh->is_array()) fail(path, ": tensor '", pname, "' shape is not an array");
        for (const json& d : *sh) {
            uint64_t x = 0;
            if (!as_index(d, &x))
                fail(path, ": tensor '", pname, "' shape ", printable(sh->dump()),
                     " must hold non-negative integers");
            t.shape.push_back(int64_t(x));
        }
        int64_t numel = 0;
        if (!checked_numel(t.shape, &numel))
            fail(path, ": tensor '", pname, "' shape ", shape_str(t.shape),
                 " has too many elements (overflow)");

        if (!of->is_array() || of->size() != 2)
            fail(path, ": tensor '", pname, "' data_offsets must be an array [begin, end]");
        uint64_t b = 0, e = 0;
        if (!as_index((*of)[0], &b) || !as_index((*of)[1], &e))
            fail(path, ": tensor '", pname, "' data_offsets ", printable(of->dump()),
                 " must be non-negative integers");
        if (b > e)
            fail(path, ": tensor '", pname, "' data_offsets [", b, ", ", e,
                 "] are reversed (begin > end)");
        if (e > data_size)
            fail(path, ": tensor '", pname, "' data_offsets [", b, ", ", e,
                 "] out of range: data section is ", data_size, " bytes (truncated file?)");
        uint64_t need = 0;
        if (__builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(t.dtype)), &need) ||
            need != e - b)
            fail(path, ": tensor '", pname, "' data_offsets [", b, ", ", e, "] but ",
                 dtype_name(t.dtype), " ", shape_str(t.shape), " needs ",
                 uint64_t(numel) * dtype_size(t.dtype), " bytes (size mismatch)");
        t.begin = size_t(b);
        t.end = size_t(e);
        tensors_.push_back(std::move(t));
    }

    // No two tensors may share bytes (empty tensors occupy none).
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& t : tensors_)
        if (t.end > t.begin) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    for (size_t i = 1; i < by_offset.size(); i++) {
        const TensorInfo& a = *by_offset[i - 1];
        const TensorInfo& b = *by_offset[i];
        if (b.begin < a.end)
            fail(path, ": tensors '", printable(a.name), "' [", a.begin, ", ", a.end, "] and '",
                 printable(b.name), "' [", b.begin, ", ", b.end, "] overlap");
    }

    std::sort(tensors_.begin(), tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
}

bool SafeTensorsReader::has(const std::string& name) const {
    auto it =
        std::lower_bound(tensors_.begin(), tensors_.end(), name,
                         [](const TensorInfo& t, const std::string& n) { return t.name < n; });
    return it != tensors_.end() && it->name == name;
}

const TensorInfo& SafeTensorsReader::info(const std::string& name) const {
    auto it =
        std::lower_bound(tensors_.begin(), tensors_.end(), name,
                         [](const TensorInfo& t, const std::string& n) { return t.name < n; });
    if (it == tensors_.end() || it->name != name)
        fail(path_, ": tensor '", name, "' not found (file has ", tensors_.size(), " tensors)");
    return *it;
}

const unsigned char* SafeTensorsReader::data_of(const TensorInfo& t) const {
    return bytes_.data() + data_start_ + t.begin;
}

void SafeTensorsReader::read_f32(const std::string& name, float* dst,
                                 const std::vector<int64_t>& shape) const {
    const TensorInfo& t = info(name);
    if (!shape.empty() && shape != t.shape)
        fail(path_, ": tensor '", name, "' has shape ", shape_str(t.shape), ", expected ",
             shape_str(shape));
    const size_t n = size_t(t.numel());
    const unsigned char* src = data_of(t);
    switch (t.dtype) {
        case DType::F32:
            if (n) std::memcpy(dst, src, n * 4);
            break;
        case DType::BF16:
            for (size_t i = 0; i < n; i++) {
                uint16_t h;
                std::memcpy(&h, src + 2 * i, 2);
                dst[i] = std::bit_cast<float>(uint32_t(h) << 16);
            }
            break;
        case DType::F16:
            for (size_t i = 0; i < n; i++) {
                uint16_t h;
                std::memcpy(&h, src + 2 * i, 2);
                dst[i] = half_to_float(h);
            }
            break;
        case DType::I32:
            for (size_t i = 0; i < n; i++) {
                int32_t v;
                std::memcpy(&v, src + 4 * i, 4);
                dst[i] = float(v);
            }
            break;
        default:
            fail(path_, ": tensor '", name, "' has dtype ", dtype_name(t.dtype),
                 ", which cannot be read as float (F32, BF16, F16 or I32 expected)");
    }
}

std::vector<float> SafeTensorsReader::read_f32(const std::string& name) const {
    std::vector<float> out(size_t(info(name).numel()));
    read_f32(name, out.data());
    return out;
}

std::vector<int32_t> SafeTensorsReader::read_i32(const std::string& name) const {
    const TensorInfo& t = info(name);
    const size_t n = size_t(t.numel());
    const unsigned char* src = data_of(t);
    std::vector<int32_t> out(n);
    if (t.dtype == DType::I32) {
        if (n) std::memcpy(out.data(), src, n * 4);
    } else if (t.dtype == DType::I64) {
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            std::memcpy(&v, src + 8 * i, 8);
            if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
                fail(path_, ": tensor '", name, "' element ", i, " = ", v,
                     " does not fit in int32");
            out[i] = int32_t(v);
        }
    } else {
        fail(path_, ": tensor '", name, "' has dtype ", dtype_name(t.dtype),
             ", which cannot be read as int32 (I32 or I64 expected)");
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<const TensorToWrite*> sorted;
    for (const TensorToWrite& t : tensors) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(),
              [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

    json header = json::object();
    if (!metadata.empty()) {
        json m = json::object();
        for (const auto& [k, v] : metadata) m[k] = v;
        header["__metadata__"] = std::move(m);
    }
    std::vector<ByteSpan> pieces(1);  // pieces[0] is the length + header, filled in below
    uint64_t offset = 0;
    for (size_t i = 0; i < sorted.size(); i++) {
        const TensorToWrite& t = *sorted[i];
        if (t.name.empty()) fail(path, ": cannot write a tensor with an empty name");
        if (t.name == "__metadata__") fail(path, ": '__metadata__' is not a valid tensor name");
        if (i > 0 && sorted[i - 1]->name == t.name)
            fail(path, ": duplicate tensor name '", t.name, "'");
        if (dtype_size(t.dtype) == 0) fail(path, ": tensor '", t.name, "' has an invalid dtype");
        int64_t numel = 0;
        uint64_t nbytes = 0;
        if (!checked_numel(t.shape, &numel) ||
            __builtin_mul_overflow(uint64_t(numel), uint64_t(dtype_size(t.dtype)), &nbytes))
            fail(path, ": tensor '", t.name, "' has invalid shape ", shape_str(t.shape));
        if (nbytes > 0 && t.data == nullptr) fail(path, ": tensor '", t.name, "' has no data");
        header[t.name] = {{"dtype", dtype_name(t.dtype)},
                          {"shape", t.shape},
                          {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        pieces.push_back(ByteSpan{t.data, size_t(nbytes)});
    }

    std::string text;
    try {
        text = header.dump();  // compact
    } catch (const json::exception& e) {
        fail(path, ": cannot encode header (tensor names and metadata must be UTF-8): ", e.what());
    }
    // Pad the header with spaces so the data section starts 8-byte aligned.
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string head(8, '\0');
    uint64_t n = text.size();
    for (int i = 0; i < 8; i++) head[size_t(i)] = char((n >> (8 * i)) & 0xff);
    head += text;
    pieces[0] = ByteSpan{head.data(), head.size()};
    write_file_atomic_pieces(path, pieces);
}

}  // namespace t6
