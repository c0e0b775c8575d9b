#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace deepen {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// How long an idle thread spins before it sleeps on a condition variable. A batch-1 decode
// step hands the pool a hundred small kernels a few microseconds apart, and waking a sleeping
// thread costs tens of microseconds on a virtual machine (a futex call and a reschedule).
// Kept short: on a machine whose cores are busy with other work, a spinning thread takes
// their time and gets descheduled itself.
constexpr auto kSpin = std::chrono::microseconds(50);

// Spins until done() or kSpin has passed; true when done() came true.
template <typename Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

// Blocks per thread of a run: enough that a thread arriving late (or a core shared with
// another process) only shifts a few blocks to the others, few enough to keep the counter cheap.
constexpr size_t kBlocksPerThread = 4;

// A run's state in one word: its id (high 32 bits), whether it is closed to new workers, and
// how many workers have joined it and not finished.
constexpr uint64_t kClosed = uint64_t(1) << 31;
constexpr uint64_t kActive = kClosed - 1;

class Pool {
 public:
  ~Pool() { resize(1); }

  int threads() const { return int(workers_.size()) + 1; }

  void resize(int threads) {
    threads = std::max(1, threads);
    if (threads == this->threads()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    // The generation the new workers start from is fixed now, not when each thread first runs:
    // one that started after a later resize (or run) would otherwise never see that change.
    const uint64_t start = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < threads; i++) workers_.emplace_back([this, start] { loop(start); });
  }

  // The work is cut into blocks that the caller and the workers take from a shared counter,
  // so it finishes as fast as the threads that actually run: the caller never waits for a
  // worker that has not started yet (it closes the run to late workers once the blocks are
  // taken), only for blocks already being worked on.
  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    const size_t parts = std::min<size_t>(size_t(threads()), grain == 0 ? n : n / std::max<size_t>(grain, 1));
    if (parts <= 1) {
      if (n > 0) fn(0, n);
      return;
    }
    uint64_t id;
    {
      // Under the mutex, so a worker about to sleep either sees the new generation or is
      // already waiting and gets the notification.
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &fn;
      n_ = n;
      // At least kBlocksPerThread per thread, and no larger than `grain` items where that makes more.
      blocks_ = std::min(n, std::max(parts * kBlocksPerThread, grain == 0 ? n : n / grain));
      next_.store(0, std::memory_order_relaxed);
      id = generation_.load(std::memory_order_relaxed) + 1;
      state_.store(id << 32, std::memory_order_relaxed);
      generation_.store(id, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    work(fn);
    const uint64_t before = state_.fetch_or(kClosed, std::memory_order_acq_rel);
    if ((before & kActive) != 0 && !spin_until([this] { return (state_.load(std::memory_order_acquire) & kActive) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return (state_.load(std::memory_order_acquire) & kActive) == 0; });
    }
  }

 private:
  // Takes blocks of the current run until none is left.
  void work(const std::function<void(size_t, size_t)>& fn) {
    const size_t per = (n_ + blocks_ - 1) / blocks_;
    for (;;) {
      const size_t b = next_.fetch_add(1, std::memory_order_relaxed);
      if (b >= blocks_) return;
      const size_t begin = b * per, end = std::min(n_, begin + per);
      if (begin < end) fn(begin, end);
    }
  }

  // Joins run `id` unless it has closed (or a newer one replaced it).
  bool join(uint64_t id) {
    uint64_t s = state_.load(std::memory_order_acquire);
    while ((s >> 32) == id && (s & kClosed) == 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
    }
    return false;
  }

  void loop(uint64_t seen) {
    for (;;) {
      if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      }
      const std::function<void(size_t, size_t)>* task;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        seen = generation_.load(std::memory_order_acquire);
        if (stop_) return;
        task = task_;
      }
      // Once joined, the run (task, sizes, counter) stays current until this worker leaves it.
      if (task == nullptr || !join(seen)) continue;
      work(*task);
      const uint64_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
      if ((before & kActive) == 1 && (before & kClosed) != 0) {
        // The caller may have stopped spinning and be asleep: wake it under the mutex.
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t, size_t)>* task_ = nullptr;
  size_t n_ = 0, blocks_ = 1;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

Pool& pool() {
  // Never destroyed: joining threads during process exit (static destruction) can deadlock.
  static Pool* instance = [] {
    auto* p = new Pool();
    p->resize(int(std::max(1u, std::thread::hardware_concurrency())));
    return p;
  }();
  return *instance;
}

}  // namespace

int pool_threads() { return pool().threads(); }
void set_pool_threads(int threads) { pool().resize(threads); }
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) { pool().run(n, grain, fn); }

}  // namespace deepen
