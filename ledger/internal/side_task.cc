#include "ledger/internal/side_task.h"

#include <pthread.h>

#include <utility>

#include "ledger/assert.h"

namespace trail::ledger::detail {

SideTask::SideTask(std::string thread_name)
    : thread_name_{std::move(thread_name)}, thread_{[this] { run(); }} {}

SideTask::~SideTask() {
  {
    std::unique_lock lock{mutex_};
    wake_.wait(lock, [this] { return !busy_; });
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void SideTask::start(std::function<void()> task) {
  {
    std::lock_guard lock{mutex_};
    TRAIL_ASSERT(!busy_);
    task_ = std::move(task);
    busy_ = true;
  }
  wake_.notify_all();
}

void SideTask::wait() {
  std::unique_lock lock{mutex_};
  wake_.wait(lock, [this] { return !busy_; });
}

void SideTask::run() {
  pthread_setname_np(pthread_self(), thread_name_.substr(0, 15).c_str());  // As top -H shows it.
  std::unique_lock lock{mutex_};
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || busy_; });
    if (busy_) {
      auto task = std::move(task_);
      lock.unlock();
      task();
      lock.lock();
      task_ = nullptr;
      busy_ = false;
      wake_.notify_all();
      continue;
    }
    return;  // Stopping, with no task left.
  }
}

}  // namespace trail::ledger::detail
