#include "tools/trailctl/line_reader.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace trail::tools {

bool LineReader::fill(bool wait) {
  if (eof_) return true;
  pollfd pfd{fd_, POLLIN, 0};
  const int ready = ::poll(&pfd, 1, wait ? -1 : 0);
  if (ready < 0) return errno == EINTR;
  if (ready == 0) return true;
  if (start_ > 0 && start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  char chunk[1 << 16];
  const ssize_t n = ::read(fd_, chunk, sizeof chunk);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) {
    eof_ = true;
    return true;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

LineReader::Next LineReader::next(std::string& line, bool wait) {
  for (;;) {
    const std::size_t newline = buffer_.find('\n', start_);
    if (newline != std::string::npos) {
      line.assign(buffer_, start_, newline - start_);
      start_ = newline + 1;
      if (start_ > (1U << 20U)) {  // Compact now and then.
        buffer_.erase(0, start_);
        start_ = 0;
      }
      ++line_number_;
      if (line.size() > line_bytes_max_) return Next::kTooLong;
      return Next::kLine;
    }
    if (buffer_.size() - start_ > line_bytes_max_) {
      ++line_number_;
      return Next::kTooLong;
    }
    if (eof_) {
      if (start_ < buffer_.size()) {
        line.assign(buffer_, start_);
        start_ = buffer_.size();
        ++line_number_;
        return Next::kLine;
      }
      return Next::kEnd;
    }
    const std::size_t before = buffer_.size();
    if (!fill(wait)) return Next::kError;
    if (!wait && buffer_.size() == before && !eof_) return Next::kNone;
  }
}

}  // namespace trail::tools
