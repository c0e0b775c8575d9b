#include "pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace deepen {
namespace {

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
      generation_++;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { loop(size_t(i)); });
  }

  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
    const size_t parts = std::min<size_t>(size_t(threads()), grain == 0 ? n : n / std::max<size_t>(grain, 1));
    if (parts <= 1) {
      if (n > 0) fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &fn;
      n_ = n;
      parts_ = parts;
      pending_ = int(parts) - 1;
      generation_++;
    }
    wake_.notify_all();
    fn(0, chunk(0).second);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  std::pair<size_t, size_t> chunk(size_t part) const {
    const size_t per = (n_ + parts_ - 1) / parts_;
    const size_t begin = std::min(n_, part * per);
    return {begin, std::min(n_, begin + per)};
  }

  void loop(size_t index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(size_t, size_t)>* task;
      std::pair<size_t, size_t> range;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        if (task_ == nullptr || index >= parts_) continue;
        task = task_;
        range = chunk(index);
      }
      if (range.first < range.second) (*task)(range.first, range.second);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_--;
      }
      done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t, size_t)>* task_ = nullptr;
  size_t n_ = 0, parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
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
