// Exceptions thrown by bgevl. Every failure caused by the caller's input (a missing file, a
// corrupt image or checkpoint, a bad argument) is one of these, with the facts in the message.
// The Python bindings map them to FileNotFoundError, ValueError and RuntimeError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace bgevl {

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// `text` as valid UTF-8 (each byte of an invalid sequence written as \xNN, so a file name in
// another encoding still shows), never empty: every error text can become a Python str.
inline std::string message_text(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    size_t len = c < 0x80                   ? 1
                 : (c >= 0xC2 && c <= 0xDF) ? 2
                 : (c >= 0xE0 && c <= 0xEF) ? 3
                 : (c >= 0xF0 && c <= 0xF4) ? 4
                                            : 0;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (s[i + k] & 0xC0) == 0x80;
    if (ok && len == 3) ok = !(c == 0xE0 && s[i + 1] < 0xA0) && !(c == 0xED && s[i + 1] >= 0xA0);
    if (ok && len == 4) ok = !(c == 0xF0 && s[i + 1] < 0x90) && !(c == 0xF4 && s[i + 1] >= 0x90);
    if (ok && len == 1 && c == 0) ok = false;  // a NUL would cut the C string Python reads
    if (ok) {
      out.append(text, i, len);
      i += len;
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
      ++i;
    }
  }
  return out.empty() ? std::string("unknown error (no message)") : out;
}
}  // namespace detail

// Base class: an error bgevl detected. Python: RuntimeError.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(detail::message_text(what)) {}
  explicit Error(const char* what) : Error(std::string(what ? what : "")) {}
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

}  // namespace bgevl

// BGEVL_CHECK(cond, ErrorType, message parts...): throw ErrorType(message) unless cond holds.
#define BGEVL_CHECK(cond, ErrorType, ...)                               \
  do {                                                                  \
    if (!(cond)) throw ErrorType(::bgevl::detail::concat(__VA_ARGS__)); \
  } while (0)
#define BGEVL_CHECK_ARG(cond, ...) BGEVL_CHECK(cond, ::bgevl::InvalidArgumentError, __VA_ARGS__)
