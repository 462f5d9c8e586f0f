#include "nn/load.h"

#include <sstream>

#include "bgevl/errors.h"
#include "nn/module.h"

namespace bgevl::nn {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}
}  // namespace

LoadReport load_weights(torch::nn::Module& root, const io::WeightSet& weights,
                        torch::ScalarType dtype, const torch::Device& device,
                        const std::string& prefix, const std::set<std::string>& ignore,
                        const std::vector<std::string>& ignore_prefixes,
                        const std::function<void(size_t, size_t)>& progress) {
  struct Slot {
    std::string name;
    std::vector<int64_t> shape;
    torch::Tensor param;
  };
  std::vector<Slot> slots;
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    auto* m = dynamic_cast<ModuleBase*>(item.value().get());
    if (!m) continue;
    auto params = m->named_parameters(/*recurse=*/false);
    for (const auto& [local, shape] : m->declared()) {
      std::string full = prefix;
      if (!item.key().empty()) full += item.key() + ".";
      full += local;
      slots.push_back({full, shape, params[local]});
    }
  }

  std::vector<std::string> missing, misshaped, unexpected;
  std::set<std::string> wanted;
  for (const auto& s : slots) {
    wanted.insert(s.name);
    if (!weights.contains(s.name)) {
      missing.push_back(s.name);
      continue;
    }
    const auto& have = weights.info(s.name).shape;
    if (have != s.shape)
      misshaped.push_back(s.name + " (checkpoint " + shape_str(have) + ", model " +
                          shape_str(s.shape) + ")");
  }
  for (const auto& n : weights.names()) {
    if (wanted.count(n) || ignore.count(n)) continue;
    bool skip = false;
    for (const auto& p : ignore_prefixes) skip |= n.rfind(p, 0) == 0;
    if (!skip && (prefix.empty() || n.rfind(prefix, 0) == 0)) unexpected.push_back(n);
  }
  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::ostringstream os;
    os << "checkpoint does not match the model (" << weights.files().front()
       << (weights.files().size() > 1 ? " and other shards" : "") << "):";
    auto list = [&os](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      os << "\n  " << v.size() << " " << what << ":";
      for (size_t i = 0; i < v.size() && i < 20; ++i) os << "\n    " << v[i];
      if (v.size() > 20) os << "\n    ... and " << v.size() - 20 << " more";
    };
    list("missing", missing);
    list("mis-shaped", misshaped);
    list("unexpected", unexpected);
    throw InvalidArgumentError(os.str());
  }

  LoadReport report;
  torch::NoGradGuard no_grad;
  // Fused projections (Q/K/V, gate/up) are allocated first; their parts' tensors are copied
  // straight into them, one at a time (never the block twice in memory).
  std::vector<ModuleBase*> blocks;
  for (const auto& m : root.modules(/*include_self=*/true))
    if (auto* b = dynamic_cast<ModuleBase*>(m.get())) blocks.push_back(b);
  for (auto* b : blocks) b->allocate_fused(dtype, device);
  for (size_t i = 0; i < slots.size(); ++i) {
    auto& s = slots[i];
    torch::Tensor t = weights.load(s.name, dtype, device);
    if (s.param.numel() > 0 && s.param.sizes() == t.sizes())
      s.param.copy_(t);  // a slice of a fused weight
    else
      s.param.set_data(t);
    report.loaded++;
    report.bytes += t.numel() * t.element_size();
    if (progress) progress(i + 1, slots.size());
  }
  for (auto* b : blocks) b->fuse();
  return report;
}

}  // namespace bgevl::nn
