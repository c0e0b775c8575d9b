// Matrix-vector products (one row times a matrix): what every projection of a batch-1 decode
// step is. SGEMM handles M = 1 poorly (it packs the weights as for a large product, reading
// them more than once); these stream each weight once at memory bandwidth.
#pragma once

#include <cstddef>

namespace deepen {

// y[N] = x[K] op(w) (+ bias[N] when bias is not null), op(w) = w stored [K, N], or w stored
// [N, K] when trans_w. Large matrices are split across the pool; the result is the same for
// every thread count.
void gemv(const float* x, const float* w, size_t K, size_t N, bool trans_w, const float* bias, float* y);

}  // namespace deepen
