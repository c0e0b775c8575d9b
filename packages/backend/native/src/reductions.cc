// Reductions and softmax. The JavaScript side brings the reduced axes together (transposing
// only when they are not already adjacent) so that every reduction here is over the middle
// axis of [outer, reduce, inner].
#include <algorithm>

#include "common.h"
#include "dispatch.h"
#include "pool.h"

namespace deepen {
namespace {

// reduce(op, x, y, outer, reduce, inner)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  const int op = int(int_arg(info, 0));
  DEEPEN_SPAN(float, x, 1);
  DEEPEN_SPAN(float, y, 2);
  const int64_t outer = int_arg(info, 3), n = int_arg(info, 4), inner = int_arg(info, 5);
  DEEPEN_CHECK(info.Env(), outer >= 0 && n >= 0 && inner >= 0, "reduce: negative size");
  DEEPEN_CHECK(info.Env(), x.length == size_t(outer * n * inner) && y.length == size_t(outer * inner), "reduce: sizes do not match");
  isa().reduce(op, x.data, y.data, size_t(outer), size_t(n), size_t(inner));
  return info.Env().Undefined();
}

// softmax(x, y, rows, cols, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(float, y, 1);
  const int64_t rows = int_arg(info, 2), cols = int_arg(info, 3);
  const bool log = bool_arg(info, 4);
  DEEPEN_CHECK(info.Env(), rows >= 0 && cols >= 0 && x.length == size_t(rows * cols) && y.length == x.length, "softmax: sizes do not match");
  const Isa& impl = isa();
  parallel_for(size_t(rows), size_t(std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1))), [&](size_t begin, size_t end) {
    impl.softmax_rows(x.data + begin * cols, y.data + begin * cols, end - begin, size_t(cols), log);
  });
  return info.Env().Undefined();
}

// argReduce(x, y, outer, reduce, inner, max): index of the largest (max) or smallest value
// along the middle axis of [outer, reduce, inner]; the first one on ties. Comparisons with NaN
// are false, so NaN is never chosen unless it comes first (as tfjs's cpu kernel behaves).
Napi::Value ArgReduce(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(int32_t, y, 1);
  const int64_t outer = int_arg(info, 2), n = int_arg(info, 3), inner = int_arg(info, 4);
  const bool max = bool_arg(info, 5);
  DEEPEN_CHECK(info.Env(), outer >= 0 && n > 0 && inner >= 0, "argReduce: bad size");
  DEEPEN_CHECK(info.Env(), x.length == size_t(outer * n * inner) && y.length == size_t(outer * inner), "argReduce: sizes do not match");
  parallel_for(size_t(outer * inner), size_t(std::max<int64_t>(1, 65536 / n)), [&](size_t begin, size_t end) {
    for (size_t j = begin; j < end; j++) {
      const size_t o = j / size_t(inner), i = j % size_t(inner);
      const float* base = x.data + o * size_t(n * inner) + i;
      int32_t best = 0;
      float value = base[0];
      for (int64_t r = 1; r < n; r++) {
        const float v = base[r * inner];
        if (max ? v > value : v < value) {
          value = v;
          best = int32_t(r);
        }
      }
      y.data[j] = best;
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void register_reductions(Napi::Env env, Napi::Object exports) {
  exports.Set("reduce", Napi::Function::New(env, Reduce, "reduce"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("argReduce", Napi::Function::New(env, ArgReduce, "argReduce"));
}

}  // namespace deepen
