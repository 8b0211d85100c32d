// The 8-bit KV cache (`--cache q8`, docs/quantization.md): every cached record (one token, one
// layer) keeps a fixed size and holds its numbers as int8 codes, row by row, with one float32
// scale per row at the record's end:
//   [codes of row 0 | codes of row 1 | ... | pad to 4 bytes | scale_0 | scale_1 | ...]
// The rows are the natural vectors of each kind: a K or V row of one KV head (MHA/MQA/GQA); the
// latent c_KV and the rotated k_pe (MLA); each rank's row of the four TPA factors in record order,
// A_K[s,:] (H), A_V[s,:] (H), B_K[s,:] (D, RoPE-rotated), B_V[s,:] (D). Codes are symmetric absmax
// rounding:
//   scale = max_i |x_i| / 127,  code_i = round_to_nearest(x_i / scale) in [-127, 127],
// so |x_i - code_i * scale| <= scale / 2 = max|x| / 254 per number. Reading is
// x_i = float(code_i) * scale (one exactly rounded float multiply: the vector dequantizer, per
// SIMD target, gives the scalar one's bits). The record is an array of int8_t elements, so the
// paged cache addresses it through CacheBlocks<int8_t> exactly like float or bf16 records.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/flash_decode.h"

namespace t6 {

struct Q8Layout {
    std::vector<int> rows;  // numbers per row, in record order (no empty rows)
    long numbers = 0;       // sum of rows: the record's numbers
    long scale_off = 0;     // bytes from the record start to its first scale (numbers, 4-aligned)
    long bytes = 0;         // record size in bytes (scale_off + 4 * rows)
};

// A layout of rows of the given lengths (zero lengths dropped).
Q8Layout q8_layout(const std::vector<int>& rows);
// The layouts of the three cache kinds (the row split documented above).
Q8Layout q8_layout(const TpaCacheDims& d);
Q8Layout q8_layout(const KvCacheDims& d);
Q8Layout q8_layout(const MlaCacheDims& d);

// Quantizes one record of L.numbers floats into L.bytes bytes at dst.
void q8_quantize_record(int8_t* dst, const float* src, const Q8Layout& L);
// n consecutive records (L.bytes apart) as n * L.numbers floats: vectorised for the SIMD target
// in force (bit-identical to the scalar version), on the calling thread.
void q8_dequantize_records(float* dst, const int8_t* src, int n, const Q8Layout& L);
void q8_dequantize_records_scalar(float* dst, const int8_t* src, int n, const Q8Layout& L);

}  // namespace t6
