// Runs the real traild binary on an ephemeral loopback port for integration tests: spawns it,
// waits for its "listening on" line, and stops it with SIGTERM (the way an operator would).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {

class TraildProcess {
 public:
  // Starts `traild` with `args` (plus --listen 127.0.0.1:0 unless args name a listen address)
  // and waits up to 20 s for it to listen. Check ok() afterwards.
  TraildProcess(const std::string& traild, std::vector<std::string> args) {
    bool has_listen = false;
    for (const auto& a : args) has_listen = has_listen || a == "--listen";
    std::vector<std::string> argv{traild};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!has_listen) {
      argv.emplace_back("--listen");
      argv.emplace_back("127.0.0.1:0");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (io_ / "out").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (io_ / "err").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    const int spawned = ::posix_spawn(&pid_, raw[0], &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      ADD_FAILURE() << "cannot start " << traild << ": " << std::strerror(spawned);
      pid_ = 0;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string out = slurp(io_ / "out");
      const auto at = out.find("listening on ");
      const auto end = at == std::string::npos ? std::string::npos : out.find('\n', at);
      if (end != std::string::npos) {
        const std::string line = out.substr(at, end - at);
        port_ = static_cast<unsigned short>(std::stoul(line.substr(line.rfind(':') + 1)));
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = 0;
        ADD_FAILURE() << "traild exited with " << exit_code_ << ": " << slurp(io_ / "err");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "traild did not start listening: " << slurp(io_ / "err");
  }

  ~TraildProcess() {
    if (pid_ != 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  TraildProcess(const TraildProcess&) = delete;
  TraildProcess& operator=(const TraildProcess&) = delete;

  bool ok() const { return pid_ != 0 && port_ != 0; }
  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then waits for the exit; returns its exit code (128 + signal when killed).
  int stop() {
    if (pid_ == 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    return wait();
  }
  void signal(int sig) const {
    if (pid_ != 0) ::kill(pid_, sig);
  }
  int wait() {
    int status = 0;
    pid_t waited = 0;
    do {
      waited = ::waitpid(pid_, &status, 0);
    } while (waited < 0 && errno == EINTR);
    pid_ = 0;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }
  std::string out() const { return slurp(io_ / "out"); }
  std::string err() const { return slurp(io_ / "err"); }

 private:
  TempDir io_;
  pid_t pid_ = 0;
  unsigned short port_ = 0;
  int exit_code_ = -1;
};

}  // namespace trail::testing
