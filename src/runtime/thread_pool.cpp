#include "runtime/thread_pool.h"

#include <ATen/Parallel.h>
#include <pthread.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <exception>

#include "bgevl/errors.h"
#include "bgevl/runtime.h"

namespace bgevl::runtime {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void ThreadPool::work() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left to do
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || workers_.empty()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Shared by the caller and the helpers: helpers that start after every index is claimed do
  // nothing, so the caller only ever waits for items that are being worked on.
  struct State {
    std::atomic<int64_t> next{0};
    int64_t n = 0;
    std::mutex mu;
    std::condition_variable done_cv;
    int64_t running = 0;  // items claimed and not finished
    std::exception_ptr error;
    int64_t error_index = 0;
  };
  auto st = std::make_shared<State>();
  st->n = n;
  st->error_index = n;
  auto run = [st, &fn] {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(st->mu);
        if (st->next.load() >= st->n) return;
        ++st->running;
      }
      const int64_t i = st->next.fetch_add(1);
      std::exception_ptr err;
      if (i < st->n) {
        try {
          fn(i);
        } catch (...) {
          err = std::current_exception();
        }
      }
      std::lock_guard<std::mutex> lock(st->mu);
      if (err && i < st->error_index) {
        st->error = err;
        st->error_index = i;
      }
      if (err) st->next = st->n;  // stop claiming: nothing after a failure is needed
      if (--st->running == 0 && st->next.load() >= st->n) st->done_cv.notify_all();
    }
  };
  const int64_t helpers = std::min<int64_t>(static_cast<int64_t>(workers_.size()), n - 1);
  for (int64_t h = 0; h < helpers; ++h) post(run);
  run();
  {
    std::unique_lock<std::mutex> lock(st->mu);
    st->done_cv.wait(lock, [&] { return st->running == 0; });
  }
  // `fn` is referenced by helpers still in the queue: they see next >= n and return at once
  // without touching it, because the check and the claim happen under the same lock.
  if (st->error) std::rethrow_exception(st->error);
}

namespace {

int every_core() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

std::mutex g_mu;  // guards the two below; held across fork()
std::shared_ptr<ThreadPool> g_pool;
int g_threads = 0;  // 0: every core
std::atomic<bool> g_forked{false};

void before_fork() { g_mu.lock(); }
void after_fork_parent() { g_mu.unlock(); }
void after_fork_child() {
  // The parent's workers do not exist here: leak the old pool rather than join them, and make a
  // fresh one on first use. libtorch is made single-threaded on bgevl's first use in the child
  // (after_fork_fixups), not in this handler, where other libraries' handlers may not have run.
  if (g_pool) new std::shared_ptr<ThreadPool>(std::move(g_pool));
  g_pool = nullptr;
  g_forked = true;
  g_mu.unlock();
}

}  // namespace

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
}

namespace {
// Installed when the library is loaded: every process that uses bgevl is covered, whichever way
// it builds its models.
const bool g_fork_handlers_installed = (install_fork_handlers(), true);
}  // namespace

std::shared_ptr<ThreadPool> pool() {
  install_fork_handlers();
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_pool) g_pool = std::make_shared<ThreadPool>(g_threads > 0 ? g_threads : every_core());
  return g_pool;
}

bool forked_child() { return g_forked; }

void after_fork_fixups() {
  // OpenMP cannot restart its threads in a forked child, and a parallel region there waits for
  // the parent's threads forever.
  if (g_forked && at::get_num_threads() > 1) at::set_num_threads(1);
}

}  // namespace bgevl::runtime

namespace bgevl {

int available_cores() { return runtime::every_core(); }

void set_num_threads(int num_threads, bool force) {
  BGEVL_CHECK_ARG(num_threads >= 0 && num_threads <= 1024,
                  "num_threads must be between 0 (every core) and 1024, got ", num_threads);
  BGEVL_CHECK_ARG(force || num_threads <= runtime::every_core(), "num_threads ", num_threads,
                  " is more than the ", runtime::every_core(),
                  " cores of this machine, which would only oversubscribe them (force it with "
                  "force=True in Python, --force-threads on the command line)");
  runtime::install_fork_handlers();
  const int n = num_threads > 0 ? num_threads : runtime::every_core();
  {
    std::lock_guard<std::mutex> lock(runtime::g_mu);
    runtime::g_threads = n;
    if (runtime::g_pool && runtime::g_pool->size() != n)
      runtime::g_pool = nullptr;  // remade on use
  }
  const int torch_threads = runtime::forked_child() ? 1 : n;
  if (at::get_num_threads() != torch_threads) at::set_num_threads(torch_threads);
}

int num_threads() {
  std::lock_guard<std::mutex> lock(runtime::g_mu);
  return runtime::g_threads > 0 ? runtime::g_threads : runtime::every_core();
}

void tune_cpu_allocator() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // A ViT-B/16 batch of 16 allocates and frees ~40 MB activations per layer. Above glibc's
    // mmap threshold each is a fresh mapping whose pages fault in again every time.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
#endif
}

}  // namespace bgevl
