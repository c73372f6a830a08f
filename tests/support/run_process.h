// Runs a program as a user would: arguments, standard input, and what it printed and returned.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn.

namespace trail::testing {

struct ProcessResult {
  int exit_code = -1;  // 128 + signal number when the process was killed.
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `argv` (argv[0] is the program) with `input` on standard input and waits for it.
// stdout and stderr go through temporary files; a failure to start is a test failure.
inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 const std::string& input = "") {
  ProcessResult result;
  TempDir io;
  {
    std::ofstream in(io / "in", std::ios::binary);
    in << input;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, (io / "in").c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (io / "out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (io / "err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> owned = argv;
  std::vector<char*> args;
  for (auto& a : owned) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(spawned);
    return result;
  }
  int status = 0;
  pid_t waited = 0;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited != pid) {
    ADD_FAILURE() << "waitpid failed: " << std::strerror(errno);
    return result;
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  result.out = slurp(io / "out");
  result.err = slurp(io / "err");
  return result;
}

}  // namespace trail::testing
