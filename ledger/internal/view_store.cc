#include "ledger/internal/view_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

namespace trail::ledger::detail {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarkPrefix = "writer.";

Status io_error(const std::string& what) {
  return Status::error(Code::kIo, what + ": " + std::strerror(errno));
}

// Makes what was written to `path` (a file or a directory) durable.
Status sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("open " + path.string());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return io_error("fsync " + path.string());
  return Status::ok();
}

// Writes `text` to a new file `path` (mode 0600) and syncs it.
Status write_durably(const fs::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("create " + path.string());
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const bool synced = written && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return io_error("write " + path.string());
  return Status::ok();
}

// Deletes the view environment's files (the caller holds the marks lock).
Status delete_environment(const fs::path& dir) {
  for (const char* file : {"data.mdb", "lock.mdb"}) {
    std::error_code ec;
    fs::remove(dir / file, ec);
    if (ec) {
      return Status::error(Code::kIo,
                           "cannot delete " + (dir / file).string() + ": " + ec.message());
    }
  }
  return Status::ok();
}

// Holds an exclusive flock on DATA/views/marks.lock, so that checking the marks, deleting the
// files and leaving a mark happen as one step among processes.
class MarksLock {
 public:
  static Result<MarksLock> take(const fs::path& dir) {
    const fs::path path = dir / "marks.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("open " + path.string());
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return io_error("lock " + path.string());
    }
    return MarksLock{fd};
  }
  MarksLock(MarksLock&& other) noexcept : fd_{other.fd_} { other.fd_ = -1; }
  MarksLock& operator=(MarksLock&&) = delete;
  ~MarksLock() {
    if (fd_ >= 0) ::close(fd_);  // Releases the lock.
  }

 private:
  explicit MarksLock(int fd) : fd_{fd} {}
  int fd_;
};

struct Mark {
  fs::path path;
  long pid = 0;
  std::string boot_id;
  std::string pid_namespace;
};

std::vector<Mark> read_marks(const fs::path& dir) {
  std::vector<Mark> marks;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kMarkPrefix, 0) != 0) continue;
    Mark mark;
    mark.path = entry.path();
    mark.pid = std::strtol(name.c_str() + kMarkPrefix.size(), nullptr, 10);
    std::ifstream in(entry.path());
    std::getline(in, mark.boot_id);
    std::getline(in, mark.pid_namespace);
    marks.push_back(std::move(mark));
  }
  return marks;
}

bool process_alive(long pid) {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

}  // namespace

fs::path views_dir(const fs::path& data_dir) { return data_dir / "views"; }

std::string current_pid_namespace() {
  std::error_code ec;
  const fs::path target = fs::read_symlink("/proc/self/ns/pid", ec);
  return ec ? std::string{} : target.string();
}

std::string current_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

Result<std::unique_ptr<ViewStore>> ViewStore::open(const fs::path& data_dir,
                                                   const Options& options) {
  const fs::path dir = views_dir(data_dir);
  std::unique_ptr<ViewStore> store{new ViewStore()};
  const std::string boot_id = current_boot_id();
  std::error_code ec;
  if (options.read_only) {
    if (!fs::exists(dir / "data.mdb", ec)) return std::unique_ptr<ViewStore>{};
    for (const Mark& mark : read_marks(dir)) {
      if (mark.boot_id != boot_id) {
        return Status::error(Code::kBusy, "the views in " + dir.string() +
                                              " were being written when the machine stopped: "
                                              "open the data directory writable first (traild, "
                                              "or trailctl rebuild) to rebuild them");
      }
    }
    EnvOptions env_options;
    env_options.read_only = true;
    env_options.views = true;
    env_options.initial_map_bytes = options.initial_map_bytes;
    TRAIL_ASSIGN_OR_RETURN(store->env_, Env::open(dir, env_options));
    return store;
  }

  fs::create_directories(dir, ec);
  if (ec) return Status::error(Code::kIo, "cannot create " + dir.string() + ": " + ec.message());
  TRAIL_ASSIGN_OR_RETURN(MarksLock lock, MarksLock::take(dir));
  bool stale_boot = false;
  bool other_writer = false;
  const std::string pid_namespace = current_pid_namespace();
  for (const Mark& mark : read_marks(dir)) {
    if (mark.boot_id != boot_id || boot_id.empty()) {
      stale_boot = true;
    } else if (mark.pid_namespace != pid_namespace || pid_namespace.empty() ||
               process_alive(mark.pid)) {
      // A live writer of this boot, a reused pid, or a process whose pid means nothing here
      // (another pid namespace): its mark stays.
      other_writer = true;
      continue;
    }
    // A writer of this boot that died left every commit in the page cache: its mark goes.
    fs::remove(mark.path, ec);
  }
  if (stale_boot) {
    spdlog::warn("the views in {} were being written when the machine stopped: deleting them "
                 "to rebuild them from the chains",
                 dir.string());
    TRAIL_TRY(delete_environment(dir));
    store->wiped_ = true;
  }
  // Without a boot id a stop of the machine cannot be told from a clean close: sync commits.
  const bool no_sync = !boot_id.empty();
  if (no_sync) {
    store->mark_ = dir / (std::string(kMarkPrefix) + std::to_string(::getpid()));
    TRAIL_TRY(write_durably(store->mark_, boot_id + "\n" + pid_namespace + "\n"));
  }
  // The mark, and the deletions, durable before anything is written.
  if (no_sync || stale_boot) TRAIL_TRY(sync_path(dir));
  EnvOptions env_options;
  env_options.create = true;
  env_options.views = true;
  env_options.no_sync = no_sync;
  env_options.write_map = no_sync;  // Pages through the map, not pwrite (docs/PERFORMANCE.md).
  env_options.initial_map_bytes = options.initial_map_bytes;
  auto opened = Env::open(dir, env_options);
  if (!opened.is_ok() && opened.status().code() == Code::kCorrupt && !other_writer) {
    // Derived data that LMDB cannot read: rebuilt from the chains rather than left in the way.
    spdlog::warn("the views in {} do not open ({}): deleting them to rebuild them from the "
                 "chains",
                 dir.string(), opened.status().to_string());
    TRAIL_TRY(delete_environment(dir));
    TRAIL_TRY(sync_path(dir));
    store->wiped_ = true;
    opened = Env::open(dir, env_options);
  }
  if (!opened.is_ok()) return opened.status();
  store->env_ = std::move(*opened);
  return store;
}

ViewStore::~ViewStore() {
  if (mark_.empty()) return;
  Status synced = env_ ? env_->sync() : Status::ok();  // No environment: nothing written.
  env_.reset();
  if (!synced.is_ok()) {
    spdlog::error("views were not synced at close, so their mark stays (the next open after a "
                  "restart of the machine rebuilds them): {}",
                  synced.to_string());
    return;
  }
  std::error_code ec;
  fs::remove(mark_, ec);
  (void)sync_path(mark_.parent_path());
}

}  // namespace trail::ledger::detail
