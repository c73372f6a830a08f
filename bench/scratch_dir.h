// Scratch directories for benchmarks, on a real disk: durable-append numbers must not come
// from a RAM file system. $TRAIL_BENCH_DIR overrides the choice.
#pragma once

#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace trail::bench {
namespace fs = std::filesystem;


inline bool is_ram_fs(const fs::path& dir) {
  struct statfs info {};
  if (::statfs(dir.c_str(), &info) != 0) return false;
  constexpr long kTmpfsMagic = 0x01021994;
  constexpr long kRamfsMagic = 0x858458f6;
  const auto type = static_cast<long>(info.f_type);
  return type == kTmpfsMagic || type == kRamfsMagic;
}

inline const fs::path& scratch_base() {
  static const fs::path base = [] {
    if (const char* env = std::getenv("TRAIL_BENCH_DIR"); env != nullptr && *env != '\0') {
      return fs::path{env};
    }
    std::error_code ec;
    fs::path tmp = fs::temp_directory_path(ec);
    if (!ec && !is_ram_fs(tmp)) return tmp;
    return fs::path{TRAIL_BENCH_FALLBACK_DIR};
  }();
  return base;
}

class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    fs::create_directories(scratch_base(), ec);
    std::string tmpl = (scratch_base() / "trail-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  fs::path keys() const { return path_ / "keys"; }
  fs::path data() const { return path_ / "data"; }

 private:
  fs::path path_;
};

}  // namespace trail::bench
