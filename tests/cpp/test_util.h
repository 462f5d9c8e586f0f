// Helpers shared by the C++ tests: fixture paths, the tolerance policy, small file writers (the
// torch-free ones in test_files.h, included here).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_files.h"

namespace bgevl::test {

// Tolerance policy (one place): token ids exact; pixel values max |diff| <= 1e-6; float32
// embeddings and CLIP features max |diff| <= 1e-5; unnormalised intermediate tensors of larger
// magnitude (MLLM hidden states, vision features) max |diff| <= 1e-5 * max(1, max |expected|),
// i.e. the same relative float32 budget (the tiny MLLM fixture's own float32 result differs
// from float64 by more than 1e-5 absolute at some positions).
constexpr double kPixelTol = 1e-6;
constexpr double kFloat32Tol = 1e-5;
inline double scaled_tol(const torch::Tensor& expected) {
  return kFloat32Tol * std::max(1.0, expected.abs().max().item<double>());
}

// The suites that run models are instantiated once per device (CPU, CUDA); the CUDA instances
// skip where no GPU is visible, and run in float32 without TF32 (the parity mode).
struct DeviceParam {
  std::string checkpoint;
  std::string device;  // "cpu" or "cuda"
};
inline void PrintTo(const DeviceParam& p, std::ostream* os) {
  *os << p.checkpoint << " on " << p.device;
}
inline std::vector<DeviceParam> on_device(const std::vector<std::string>& checkpoints,
                                          const std::string& device) {
  std::vector<DeviceParam> out;
  for (const auto& c : checkpoints) out.push_back({c, device});
  return out;
}
inline std::string param_name(const ::testing::TestParamInfo<DeviceParam>& info) {
  std::string n = info.param.checkpoint;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}
// In SetUp(): skips the test when the device is not there.
#define BGEVL_SKIP_WITHOUT_DEVICE(name)                \
  if ((name) != "cpu" && !torch::cuda::is_available()) \
  GTEST_SKIP() << "no CUDA device visible: the CUDA instance of this suite skips"
inline torch::Device device_of(const std::string& name) {
  if (name != "cpu") {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  return torch::Device(name);
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64))
      .abs()
      .max()
      .item<double>();
}

// Serialises float32 tensors as a safetensors file, with an optional raw header override.
inline std::string safetensors_bytes(const std::map<std::string, torch::Tensor>& tensors,
                                     const std::string& dtype = "F32") {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t0] : tensors) {
    torch::Tensor t = t0.contiguous();
    if (dtype == "F16") t = t.to(torch::kFloat16);
    if (dtype == "BF16") t = t.to(torch::kBFloat16);
    const uint64_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    header[name] = {
        {"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h.push_back(' ');
  uint64_t n = h.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + h + data;
}

inline std::string raw_safetensors(const std::string& header_json, const std::string& data) {
  uint64_t n = header_json.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + header_json + data;
}

}  // namespace bgevl::test
