#include "gemv.h"

#include <algorithm>
#include <vector>

#include "dispatch.h"
#include "pool.h"

namespace deepen {
namespace {

// Below this many bytes of weights the product runs on the calling thread. At the 9m shape
// (64 KB to 1 MB matrices, all cache-resident, microseconds each) splitting from 128 KB
// measured best on two cores; from 64 KB too, the second thread's share of the smallest
// matrices was lost whenever another process held its core.
constexpr size_t kParallelBytes = 128 * 1024;

// Rows of w per partial sum when w [K, N] is split by rows. Set by K alone, never by the
// thread count, and the partial sums are added in a fixed order: one thread and several give
// bit-identical results. Splitting rows (not columns) lets each thread stream one contiguous
// block of the matrix, which is what reaches memory bandwidth.
size_t chunk_rows(size_t K) {
  const size_t rows = std::max<size_t>(64, (K + 15) / 16);
  return (rows + 7) / 8 * 8;
}

}  // namespace

void gemv(const float* x, const float* w, size_t K, size_t N, bool trans_w, const float* bias, float* y) {
  const Isa& impl = isa();
  const bool parallel = K * N * sizeof(float) >= kParallelBytes;
  if (trans_w) {
    // Each output is one dot product with a row of w: any split of the rows gives the same y.
    parallel_for(N, parallel ? 16 : N, [&](size_t begin, size_t end) { impl.gemv_dot(x, w, K, begin, end, K, y); });
  } else if (!parallel || K <= chunk_rows(K)) {
    impl.gemv_rows(x, w, K, N, N, y);
  } else {
    const size_t rows = chunk_rows(K), chunks = (K + rows - 1) / rows;
    // Reused between calls (one decode step makes dozens): no allocation in the steady state.
    thread_local std::vector<float> partial;
    if (partial.size() < chunks * N) partial.resize(chunks * N);
    float* parts = partial.data();
    parallel_for(chunks, 1, [&](size_t first, size_t last) {
      for (size_t c = first; c < last; c++) {
        const size_t k0 = c * rows;
        impl.gemv_rows(x + k0, w + k0 * N, std::min(rows, K - k0), N, N, parts + c * N);
      }
    });
    std::copy(parts, parts + N, y);
    for (size_t c = 1; c < chunks; c++) {
      const float* p = parts + c * N;
      for (size_t n = 0; n < N; n++) y[n] += p[n];
    }
  }
  if (bias)
    for (size_t n = 0; n < N; n++) y[n] += bias[n];
}

}  // namespace deepen
