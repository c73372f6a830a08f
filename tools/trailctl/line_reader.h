// Reads lines from a file descriptor as they arrive, so a caller can take "up to N lines or
// whatever has arrived" without waiting for more input than is there.
#pragma once

#include <cstddef>
#include <string>

namespace trail::tools {

class LineReader {
 public:
  LineReader(int fd, std::size_t line_bytes_max) : fd_{fd}, line_bytes_max_{line_bytes_max} {}

  enum class Next { kLine, kNone, kEnd, kTooLong, kError };
  // kLine: `line` holds the next line (without its newline) and line_number() its number.
  // kNone: no complete line is buffered and, with wait = false, none has arrived.
  // kEnd: input is exhausted. kTooLong: a line exceeds line_bytes_max (it is skipped).
  // kError: reading failed.
  Next next(std::string& line, bool wait);
  std::size_t line_number() const { return line_number_; }

 private:
  // Reads what is available; blocks only when `wait`. Returns false on error.
  bool fill(bool wait);
  int fd_;
  std::size_t line_bytes_max_;
  std::string buffer_;
  std::size_t start_ = 0;
  bool eof_ = false;
  std::size_t line_number_ = 0;
};

}  // namespace trail::tools
