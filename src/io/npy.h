// NumPy's .npy format (version 1.0: float32 / float16 [N, D]) written and read back through a
// memory map (the file helpers are in io/file.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/file.h"

namespace bgevl::io {

// The .npy header of a C-order [rows, cols] array of `dtype` (kFloat32 or kHalf).
std::string npy_header(int64_t rows, int64_t cols, torch::ScalarType dtype);
// A [N, D] tensor as .npy bytes written to `out`, converted to `dtype` (kFloat32 or kHalf).
void write_npy(AtomicFile& out, const torch::Tensor& t, torch::ScalarType dtype = torch::kFloat32);
// A 2-D float32 / float16 .npy file mapped into memory: `tensor` is a CPU view of the file's
// data that keeps the mapping alive. InvalidArgumentError for anything else (other dtypes,
// Fortran order, a size that does not match the header); FileNotFoundError if absent.
torch::Tensor map_npy(const std::string& path);

}  // namespace bgevl::io
