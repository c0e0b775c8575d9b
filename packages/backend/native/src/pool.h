// A small persistent thread pool for deepen's own kernels (OpenBLAS has its own for matrix
// products). Kernels run one at a time, so the pool never competes with itself; work is split
// into contiguous ranges, one per thread, and the calling thread takes the first.
#pragma once

#include <cstddef>
#include <functional>

namespace deepen {

// Threads the pool uses, the caller included (1 = run everything inline).
int pool_threads();
void set_pool_threads(int threads);

// Runs fn(begin, end) over [0, n) split into at most pool_threads() ranges, returning when all
// are done. Work smaller than `grain` items per thread runs inline on the caller.
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace deepen
