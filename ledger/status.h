// Status and Result<T>: the outcome of an operation whose failure the caller must handle.
// Codes say what the caller should do next:
//   kNotFound  the thing asked for does not exist.
//   kConflict  the request contradicts what is stored (same event id, other body).
//   kInvalid   the input is malformed or breaks a limit; fix it and retry.
//   kBusy      a limit of the moment (queue full, shutting down); retry later.
//   kCorrupt   stored data fails verification; stop trusting this data directory.
//   kIo        the operating system refused (file missing, permission, disk).
//   kFatal     storage failed mid-commit; the ledger is poisoned until restart.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "ledger/assert.h"

namespace trail {

enum class Code : std::uint8_t { kOk, kNotFound, kConflict, kInvalid, kBusy, kCorrupt, kIo, kFatal };

// Stable lower-case name of a code, for logs and JSON error bodies.
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  static Status ok() { return Status{}; }
  static Status error(Code code, std::string detail) {
    TRAIL_ASSERT(code != Code::kOk);
    return Status{code, std::move(detail)};
  }
  bool is_ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& detail() const { return detail_; }
  // "<code>: <detail>", or "ok".
  std::string to_string() const;

 private:
  Status() = default;
  Status(Code code, std::string detail) : code_{code}, detail_{std::move(detail)} {}
  Code code_ = Code::kOk;
  std::string detail_;
};

// A T, or the non-ok Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_{std::move(value)} {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_{std::move(status)} {  // NOLINT(google-explicit-constructor)
    TRAIL_ASSERT(!std::get<Status>(v_).is_ok());
  }
  bool is_ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    TRAIL_ASSERT(!is_ok());
    return std::get<Status>(v_);
  }
  Status take_status() && {
    TRAIL_ASSERT(!is_ok());
    return std::move(std::get<Status>(v_));
  }
  T& value() & {
    TRAIL_ASSERT(is_ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    TRAIL_ASSERT(is_ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    TRAIL_ASSERT(is_ok());
    return std::move(std::get<T>(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace trail

#define TRAIL_CONCAT_INNER(a, b) a##b
#define TRAIL_CONCAT(a, b) TRAIL_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` fails.
#define TRAIL_TRY(expr) TRAIL_TRY_IMPL(TRAIL_CONCAT(status_, __LINE__), expr)
#define TRAIL_TRY_IMPL(tmp, expr)                     \
  do {                                                \
    if (::trail::Status tmp = (expr); !tmp.is_ok()) { \
      return tmp;                                     \
    }                                                 \
  } while (false)

// Declares `lhs` from a Result-returning `expr`, or returns its Status.
#define TRAIL_ASSIGN_OR_RETURN(lhs, expr) \
  TRAIL_ASSIGN_OR_RETURN_IMPL(TRAIL_CONCAT(result_, __LINE__), lhs, expr)
#define TRAIL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) {                               \
    return std::move(tmp).take_status();            \
  }                                                 \
  lhs = std::move(tmp).value()
