// Kernels for a batch-1 forward with a KV cache that runs outside TensorFlow.js's per-op
// dispatch (src/native/decode.ts): a linear layer on plain arrays, and attention that rotates
// the new keys into a preallocated cache, writes them in place and attends over it. A decode
// step of a small model is otherwise dominated by per-op overhead and by copying the whole
// cache into a new tensor every step.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "dispatch.h"
#include "gemv.h"
#include "pool.h"

namespace deepen {
namespace {

// linear(x, w, bias, y, M, K, N, transW): y [M, N] = x [M, K] op(w) (+ bias [N] unless bias is
// null), op(w) = w stored [K, N], or w stored [N, K] when transW.
Napi::Value Linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(float, w, 1);
  const bool hasBias = !info[2].IsNull() && !info[2].IsUndefined();
  Span<float> bias;
  if (hasBias) {
    bias = span_of<float>(info, 2, "bias");
    if (!bias.ok) return env.Undefined();
  }
  DEEPEN_SPAN(float, y, 3);
  const int64_t M = int_arg(info, 4), K = int_arg(info, 5), N = int_arg(info, 6);
  const bool transW = bool_arg(info, 7);
  DEEPEN_CHECK(env, M >= 0 && K > 0 && N > 0, "linear: dimensions must be positive (M may be 0)");
  DEEPEN_CHECK(env, x.length == size_t(M * K) && w.length == size_t(K * N) && y.length == size_t(M * N), "linear: x, w and y do not fit [M, K] x [K, N] = [M, N]");
  DEEPEN_CHECK(env, !hasBias || bias.length == size_t(N), "linear: bias must have N values");
  if (M == 1) {
    gemv(x.data, w.data, size_t(K), size_t(N), transW, hasBias ? bias.data : nullptr, y.data);
    return env.Undefined();
  }
  if (M == 0) return env.Undefined();
  // Several rows (a prompt's prefill): SGEMM, with the columns split across deepen's pool and
  // OpenBLAS single-threaded meanwhile. OpenBLAS's own workers, once woken, spin for about
  // 2^28 cycles (~75 ms) after each product; the decode steps that follow a prefill then
  // share a core with a spinning thread (measured at the 9m shape: 40% fewer tokens/s).
  const int blasThreads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  constexpr size_t kTile = 128;  // columns per SGEMM call: a multiple of 16 keeps rows aligned
  const size_t tiles = (size_t(N) + kTile - 1) / kTile;
  parallel_for(tiles, 1, [&](size_t first, size_t last) {
    const size_t n0 = first * kTile, n1 = std::min(size_t(N), last * kTile);
    const float* wBlock = transW ? w.data + n0 * size_t(K) : w.data + n0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transW ? CblasTrans : CblasNoTrans, int(M), int(n1 - n0), int(K), 1.0f, x.data, int(K), wBlock,
                transW ? int(K) : int(N), 0.0f, y.data + n0, int(N));
  });
  openblas_set_num_threads(blasThreads);
  if (hasBias)
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) y.data[m * N + n] += bias.data[n];
  return env.Undefined();
}

// attendCached(q, k, v, kCache, vCache, out, cos, sin, T, offset, nH, nKV, hd, capacity, scale, window)
// The attention of T new positions (offset .. offset + T - 1) of one sequence:
// - q [T, nH, hd], k and v [T, nKV, hd]: the projections, position-major as a linear layer
//   writes them; cos and sin [T, hd]: the rotary rows of those positions.
// - kCache [nKV, hd, capacity] (keys transposed: position p is column p) and vCache
//   [nKV, capacity, hd]: the rotated keys and the values of positions before offset; the new
//   ones are written at offset .. offset + T - 1. With the keys transposed, a query's scores
//   and its weighted sum of values are both matrix-vector products over contiguous rows.
// - out [T, nH, hd]: query t attends causally over cached positions 0 .. offset + t (the last
//   `window` of them when window > 0), query head h reading kv head h / (nH / nKV).
Napi::Value AttendCached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, q, 0);
  DEEPEN_SPAN(float, k, 1);
  DEEPEN_SPAN(float, v, 2);
  DEEPEN_SPAN(float, kCache, 3);
  DEEPEN_SPAN(float, vCache, 4);
  DEEPEN_SPAN(float, out, 5);
  DEEPEN_SPAN(float, cos, 6);
  DEEPEN_SPAN(float, sin, 7);
  const int64_t T = int_arg(info, 8), offset = int_arg(info, 9), nH = int_arg(info, 10), nKV = int_arg(info, 11), hd = int_arg(info, 12),
                capacity = int_arg(info, 13);
  const float scale = float(number_arg(info, 14));
  const int64_t window = int_arg(info, 15);
  DEEPEN_CHECK(env, T >= 0 && offset >= 0 && nH > 0 && nKV > 0 && nH % nKV == 0 && hd > 0 && hd % 2 == 0 && window >= 0,
               "attendCached: bad shape (heads must divide, head_dim must be even, window >= 0)");
  DEEPEN_CHECK(env, offset + T <= capacity, "attendCached: offset + T exceeds the cache capacity");
  DEEPEN_CHECK(env, q.length == size_t(T * nH * hd) && out.length == q.length && k.length == size_t(T * nKV * hd) && v.length == k.length,
               "attendCached: q, out [T, nH, hd] or k, v [T, nKV, hd] have the wrong size");
  DEEPEN_CHECK(env, kCache.length == size_t(nKV * capacity * hd) && vCache.length == kCache.length, "attendCached: the caches are not [nKV, hd, capacity] and [nKV, capacity, hd]");
  DEEPEN_CHECK(env, cos.length == size_t(T * hd) && sin.length == cos.length, "attendCached: cos and sin are not [T, hd]");
  if (T == 0) return env.Undefined();
  const Isa& impl = isa();
  const size_t D = size_t(hd), cap = size_t(capacity);
  std::vector<float> rotated(std::max(q.length, D));
  for (int64_t t = 0; t < T; t++) {
    const float* c = cos.data + t * D;
    const float* s = sin.data + t * D;
    const size_t pos = size_t(offset + t);
    for (int64_t j = 0; j < nKV; j++) {
      const size_t src = size_t(t * nKV + j) * D;
      impl.rope(k.data + src, c, s, 1, 1, D, false, rotated.data());
      float* column = kCache.data + size_t(j) * D * cap + pos;
      for (size_t d = 0; d < D; d++) column[d * cap] = rotated[d];
      std::memcpy(vCache.data + (size_t(j) * cap + pos) * D, v.data + src, D * sizeof(float));
    }
  }
  for (int64_t t = 0; t < T; t++) impl.rope(q.data + t * nH * D, cos.data + t * D, sin.data + t * D, size_t(nH), 1, D, false, rotated.data() + t * nH * D);
  const size_t rows = size_t(T * nH), rep = size_t(nH / nKV), keys = size_t(offset + T);
  // Split across the pool only when the rows carry enough work to pay for it.
  const bool parallel = rows * keys * D >= (size_t(1) << 15);
  parallel_for(rows, parallel ? 1 : rows, [&](size_t begin, size_t end) {
    std::vector<float> scores(keys);
    for (size_t r = begin; r < end; r++) {
      const size_t t = r / size_t(nH), h = r % size_t(nH), j = h / rep;
      const size_t last = size_t(offset) + t;
      const size_t first = window > 0 && last + 1 > size_t(window) ? last + 1 - size_t(window) : 0;
      impl.attend_row(rotated.data() + r * D, kCache.data + j * D * cap + first, cap, vCache.data + (j * cap + first) * D, last - first + 1, D, scale,
                      scores.data(), out.data + r * D);
    }
  });
  return env.Undefined();
}

}  // namespace

void register_decode(Napi::Env env, Napi::Object exports) {
  exports.Set("linear", Napi::Function::New(env, Linear, "linear"));
  exports.Set("attendCached", Napi::Function::New(env, AttendCached, "attendCached"));
}

}  // namespace deepen
