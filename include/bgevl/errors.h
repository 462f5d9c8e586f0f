// Exceptions thrown by bgevl. Every failure caused by the caller's input (a missing file, a
// corrupt image or checkpoint, a bad argument) is one of these, with the facts in the message.
// The Python bindings map them to FileNotFoundError, ValueError and RuntimeError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace bgevl {

// Base class: an error bgevl detected. Python: RuntimeError.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file or model folder that does not exist. Python: FileNotFoundError.
class FileNotFoundError : public Error {
 public:
  using Error::Error;
};

// A bad argument or bad data: wrong option value, mismatched lists, empty batch, corrupt or
// unsupported file, invalid checkpoint. Python: ValueError.
class InvalidArgumentError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace bgevl

// BGEVL_CHECK(cond, ErrorType, message parts...): throw ErrorType(message) unless cond holds.
#define BGEVL_CHECK(cond, ErrorType, ...)                               \
  do {                                                                  \
    if (!(cond)) throw ErrorType(::bgevl::detail::concat(__VA_ARGS__)); \
  } while (0)
#define BGEVL_CHECK_ARG(cond, ...) BGEVL_CHECK(cond, ::bgevl::InvalidArgumentError, __VA_ARGS__)
