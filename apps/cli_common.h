// What the bgevl subcommands share: the usage error and argument parsing.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

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

int index_main(int argc, char** argv);
int search_main(int argc, char** argv);
int evaluate_main(int argc, char** argv);
int dataset_main(int argc, char** argv);

}  // namespace bgevl::cli
