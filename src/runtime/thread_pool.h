// One persistent thread pool per process for the host side of the input pipeline (decoding,
// resizing, tokenizing). Sized by bgevl::set_num_threads (every core by default); no thread is
// created per call. A child process forked after the pool started gets a fresh pool on first
// use (pthread_atfork): the parent's threads do not exist there.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace bgevl::runtime {

class ThreadPool {
 public:
  // `threads` is the parallelism of parallel_for: threads - 1 workers plus the calling thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, n) on the workers and the calling thread, and returns when all
  // are done. If any throw, the exception of the lowest failing index is rethrown (every lower
  // index was claimed before it and still runs), so the error does not depend on timing. Safe to
  // call from a pool task: the caller works through the items itself rather than waiting for
  // workers that may be busy.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

  // Runs fn on a worker (on the calling thread when there is none); its result or exception
  // arrives through the future.
  template <typename F>
  auto submit(F&& fn) -> std::future<decltype(fn())> {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    auto future = task->get_future();
    if (workers_.empty())
      (*task)();
    else
      post([task] { (*task)(); });
    return future;
  }

 private:
  void post(std::function<void()> job);
  void work();

  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

// The process's pool, created on first use. Callers hold the shared_ptr while they use it, so
// set_num_threads can replace the pool while another thread is still working with the old one.
std::shared_ptr<ThreadPool> pool();

// Whether this process is a child forked from a bgevl process whose libtorch may have started
// OpenMP threads (libtorch then runs single-threaded here; see bgevl::set_num_threads).
bool forked_child();

// In a forked child: makes libtorch single-threaded (OpenMP cannot restart its pool there).
// Called on entry to every public function that loads or computes (not in the fork handler
// itself, where other libraries' handlers may not have run yet).
void after_fork_fixups();

// Registers the fork handlers (idempotent); done when the library is loaded.
void install_fork_handlers();

}  // namespace bgevl::runtime
