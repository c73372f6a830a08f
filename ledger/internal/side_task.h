// SideTask: one thread that runs a task while its owner does something else, e.g. the writer
// sealing the views' records while it waits for the chain's commit to reach the disk.
//
// Thread safety: start() and wait() are called by one owner thread, in turns (start, wait,
// start, ...); the task runs on the side thread and must not touch what the owner uses until
// wait() returns. The destructor joins the thread (after the last task, if any, finished).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace trail::ledger::detail {

class SideTask {
 public:
  explicit SideTask(std::string thread_name);
  ~SideTask();
  SideTask(const SideTask&) = delete;
  SideTask& operator=(const SideTask&) = delete;

  // Runs `task` on the side thread. At most one task at a time: wait() before the next.
  void start(std::function<void()> task);
  // Returns once the started task has finished (at once when none was started).
  void wait();

 private:
  void run();

  std::string thread_name_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::function<void()> task_;  // Set by start(), cleared by the side thread when done.
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;  // Last: starts once the members above exist.
};

}  // namespace trail::ledger::detail
