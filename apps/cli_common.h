// What the bgevl subcommands share: the usage error and argument parsing.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "bgevl/bgevl.h"

namespace bgevl::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Walks argv[first..]: `value()` takes the next argument, `number(lo, hi)` one as an integer in
// [lo, hi]; UsageError otherwise.
class Args {
 public:
  Args(int argc, char** argv, int first) : argc_(argc), argv_(argv), i_(first - 1) {}
  bool next() { return ++i_ < argc_; }
  std::string arg() const { return argv_[i_]; }
  std::string value() {
    if (i_ + 1 >= argc_) throw UsageError(arg() + " needs a value");
    return argv_[++i_];
  }
  long long number(long long lo, long long hi) {
    const std::string a = arg(), v = value();
    try {
      size_t used = 0;
      const long long n = std::stoll(v, &used);
      if (used == v.size() && n >= lo && n <= hi) return n;
    } catch (const std::exception&) {
    }
    throw UsageError(a + " needs a whole number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + ", got '" + v + "'");
  }

 private:
  int argc_;
  char** argv_;
  int i_;
};

// --model, --device, --dtype, --revision, --threads: what every model-loading command takes.
struct ModelArgs {
  std::string model, device = "cpu", dtype = "default", revision, cache_dir;
  bool local_files_only = false, force_threads = false;
  long long threads = 0;
  bool parse(Args& a) {
    const std::string s = a.arg();
    if (s == "--model")
      model = a.value();
    else if (s == "--device")
      device = a.value();
    else if (s == "--dtype")
      dtype = a.value();
    else if (s == "--revision")
      revision = a.value();
    else if (s == "--threads")
      threads = a.number(0, 1024);
    else if (s == "--cache-dir")
      cache_dir = a.value();
    else if (s == "--local-files-only")
      local_files_only = true;
    else if (s == "--force-threads")
      force_threads = true;
    else
      return false;
    return true;
  }
  std::unique_ptr<Embedder> load(const std::string& fallback, const std::string& fallback_rev) {
    LoadOptions lo;
    lo.device = parse_device(device);
    lo.dtype = parse_dtype(dtype);
    lo.revision = !revision.empty()                        ? revision
                  : model.empty() && !fallback_rev.empty() ? fallback_rev
                                                           : "main";
    lo.cache_dir = cache_dir;
    lo.local_files_only = local_files_only;
    lo.download_progress = [last = std::string(), tenth = -1](const std::string& f, int64_t done,
                                                              int64_t total) mutable {
      const int t = total > 0 ? static_cast<int>(10 * done / total) : 0;
      if (f == last && t == tenth) return;
      last = f;
      tenth = t;
      std::fprintf(stderr, "downloading %s: %lld%s bytes\n", f.c_str(),
                   static_cast<long long>(done),
                   total > 0 ? (" of " + std::to_string(total)).c_str() : "");
    };
    set_num_threads(static_cast<int>(threads), force_threads);
    if (lo.device.is_cpu()) tune_cpu_allocator();
    return bgevl::load(model.empty() ? fallback : model, lo);
  }
};

int index_main(int argc, char** argv);
int search_main(int argc, char** argv);
int evaluate_main(int argc, char** argv);
int dataset_main(int argc, char** argv);
int serve_main(int argc, char** argv);

}  // namespace bgevl::cli
