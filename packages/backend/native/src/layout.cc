// Kernels that move elements without arithmetic (transpose, slice, concat, gather) plus the
// scatter-add behind gather's gradient. They work on 4-byte (float32, int32) and 1-byte (bool)
// elements alike.
#include <cstring>
#include <vector>

#include "common.h"

namespace deepen {
namespace {

// transpose(x, y, shape, perm): y = x with its axes permuted (y's axis i is x's axis perm[i]).
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_RAW(x, 0);
  DEEPEN_RAW(y, 1);
  DEEPEN_SPAN(int32_t, shape, 2);
  DEEPEN_SPAN(int32_t, perm, 3);
  const size_t rank = shape.length;
  DEEPEN_CHECK(env, perm.length == rank && x.element == y.element && x.length == y.length, "transpose: arguments do not match");
  std::vector<int64_t> inStride(rank, 1);
  size_t size = 1;
  for (size_t i = rank; i-- > 0;) {
    inStride[i] = int64_t(size);
    size *= size_t(shape.data[i]);
  }
  DEEPEN_CHECK(env, size == x.length, "transpose: shape does not match the input size");
  std::vector<int64_t> outShape(rank), stride(rank);
  std::vector<bool> seen(rank, false);
  for (size_t i = 0; i < rank; i++) {
    const int32_t p = perm.data[i];
    DEEPEN_CHECK(env, p >= 0 && size_t(p) < rank && !seen[size_t(p)], "transpose: perm is not a permutation");
    seen[size_t(p)] = true;
    outShape[i] = shape.data[p];
    stride[i] = inStride[size_t(p)];
  }
  if (size == 0) return env.Undefined();
  const size_t inner = rank == 0 ? 1 : size_t(outShape[rank - 1]);
  const int64_t innerStride = rank == 0 ? 1 : stride[rank - 1];
  std::vector<int64_t> index(rank, 0);
  int64_t src = 0;
  for (size_t out = 0; out < size; out += inner) {
    if (x.element == 4) {
      const uint32_t* in = reinterpret_cast<const uint32_t*>(x.data) + src;
      uint32_t* o = reinterpret_cast<uint32_t*>(y.data) + out;
      if (innerStride == 1) std::memcpy(o, in, inner * 4);
      else for (size_t i = 0; i < inner; i++) o[i] = in[int64_t(i) * innerStride];
    } else {
      const uint8_t* in = x.data + src;
      uint8_t* o = y.data + out;
      for (size_t i = 0; i < inner; i++) o[i] = in[int64_t(i) * innerStride];
    }
    for (int64_t d = int64_t(rank) - 2; d >= 0; d--) {
      index[d]++;
      src += stride[d];
      if (index[d] < outShape[d]) break;
      src -= stride[d] * outShape[d];
      index[d] = 0;
    }
  }
  return env.Undefined();
}

// slice(x, y, shape, begin, size): the box of `size` starting at `begin` (strides 1).
Napi::Value Slice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_RAW(x, 0);
  DEEPEN_RAW(y, 1);
  DEEPEN_SPAN(int32_t, shape, 2);
  DEEPEN_SPAN(int32_t, begin, 3);
  DEEPEN_SPAN(int32_t, size, 4);
  const size_t rank = shape.length;
  DEEPEN_CHECK(env, begin.length == rank && size.length == rank && x.element == y.element, "slice: arguments do not match");
  std::vector<int64_t> stride(rank, 1);
  size_t total = 1, outTotal = 1;
  for (size_t i = rank; i-- > 0;) {
    DEEPEN_CHECK(env, begin.data[i] >= 0 && size.data[i] >= 0 && begin.data[i] + size.data[i] <= shape.data[i], "slice: box outside the input");
    stride[i] = int64_t(total);
    total *= size_t(shape.data[i]);
    outTotal *= size_t(size.data[i]);
  }
  DEEPEN_CHECK(env, total == x.length && outTotal == y.length, "slice: sizes do not match");
  if (outTotal == 0) return env.Undefined();
  int64_t src = 0;
  for (size_t i = 0; i < rank; i++) src += int64_t(begin.data[i]) * stride[i];
  const size_t run = (rank == 0 ? 1 : size_t(size.data[rank - 1])) * x.element;
  std::vector<int64_t> index(rank, 0);
  for (size_t out = 0; out < outTotal * x.element; out += run) {
    std::memcpy(y.data + out, x.data + src * int64_t(x.element), run);
    for (int64_t d = int64_t(rank) - 2; d >= 0; d--) {
      index[d]++;
      src += stride[d];
      if (index[d] < size.data[d]) break;
      src -= stride[d] * size.data[d];
      index[d] = 0;
    }
  }
  return env.Undefined();
}

// concat(inputs[], y, outer, widths): inputs viewed as [outer, width_i], joined along axis 1.
Napi::Value Concat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_CHECK(env, info[0].IsArray(), "concat: inputs must be an array");
  Napi::Array inputs = info[0].As<Napi::Array>();
  DEEPEN_RAW(y, 1);
  const int64_t outer = int_arg(info, 2);
  DEEPEN_SPAN(int32_t, widths, 3);
  DEEPEN_CHECK(env, widths.length == inputs.Length(), "concat: one width per input");
  std::vector<RawSpan> parts;
  size_t total = 0;
  for (uint32_t i = 0; i < inputs.Length(); i++) {
    Napi::Value v = inputs[i];
    napi_typedarray_type kind;
    size_t length = 0;
    void* data = nullptr;
    DEEPEN_CHECK(env, v.IsTypedArray() && napi_get_typedarray_info(env, v, &kind, &length, &data, nullptr, nullptr) == napi_ok, "concat: inputs must be typed arrays");
    RawSpan part;
    part.data = static_cast<uint8_t*>(data);
    part.length = length;
    part.element = y.element;
    DEEPEN_CHECK(env, length == size_t(outer) * size_t(widths.data[i]), "concat: input size does not match outer x width");
    // Any other kind (Int16Array, Float64Array, ...) has other element sizes: memcpy would read
    // past its end or copy the wrong bytes.
    DEEPEN_CHECK(env, element_size(kind) == y.element, "concat: element types differ");
    parts.push_back(part);
    total += size_t(widths.data[i]);
  }
  DEEPEN_CHECK(env, y.length == size_t(outer) * total, "concat: output size does not match");
  const size_t e = y.element;
  for (int64_t o = 0; o < outer; o++) {
    uint8_t* dst = y.data + size_t(o) * total * e;
    for (size_t i = 0; i < parts.size(); i++) {
      const size_t w = size_t(widths.data[i]) * e;
      std::memcpy(dst, parts[i].data + size_t(o) * w, w);
      dst += w;
    }
  }
  return env.Undefined();
}

// gather(x, indices, y, outer, axisSize, inner): x [outer, axisSize, inner] -> y [outer, n, inner].
Napi::Value Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_RAW(x, 0);
  DEEPEN_SPAN(int32_t, indices, 1);
  DEEPEN_RAW(y, 2);
  const int64_t outer = int_arg(info, 3), axis = int_arg(info, 4), inner = int_arg(info, 5);
  const size_t n = indices.length;
  DEEPEN_CHECK(env, x.element == y.element && x.length == size_t(outer * axis * inner) && y.length == size_t(outer) * n * size_t(inner), "gather: sizes do not match");
  for (size_t i = 0; i < n; i++) {
    if (indices.data[i] < 0 || indices.data[i] >= axis) {
      DEEPEN_THROW(env, RangeError, "GatherV2: the index value " + std::to_string(indices.data[i]) + " is not in [0, " + std::to_string(axis - 1) + "]");
    }
  }
  const size_t row = size_t(inner) * x.element;
  for (int64_t o = 0; o < outer; o++)
    for (size_t i = 0; i < n; i++)
      std::memcpy(y.data + (size_t(o) * n + i) * row, x.data + (size_t(o) * size_t(axis) + size_t(indices.data[i])) * row, row);
  return env.Undefined();
}

// segmentSum(x, ids, y, numSegments): y[ids[r]] += x[r] over rows; y is [numSegments, inner].
// Rows whose id is outside [0, numSegments) are dropped, as in TensorFlow.
Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(int32_t, ids, 1);
  DEEPEN_SPAN(float, y, 2);
  const int64_t segments = int_arg(info, 3);
  const size_t rows = ids.length;
  const size_t inner = rows == 0 ? 0 : x.length / rows;
  DEEPEN_CHECK(env, segments >= 0 && x.length == rows * inner && (rows == 0 || y.length == size_t(segments) * inner), "segmentSum: sizes do not match");
  std::fill(y.data, y.data + y.length, 0.0f);
  for (size_t r = 0; r < rows; r++) {
    const int32_t s = ids.data[r];
    if (s < 0 || s >= segments) continue;
    float* dst = y.data + size_t(s) * inner;
    const float* src = x.data + r * inner;
    for (size_t j = 0; j < inner; j++) dst[j] += src[j];
  }
  return env.Undefined();
}

}  // namespace

void register_layout(Napi::Env env, Napi::Object exports) {
  exports.Set("transpose", Napi::Function::New(env, Transpose, "transpose"));
  exports.Set("slice", Napi::Function::New(env, Slice, "slice"));
  exports.Set("concat", Napi::Function::New(env, Concat, "concat"));
  exports.Set("gather", Napi::Function::New(env, Gather, "gather"));
  exports.Set("segmentSum", Napi::Function::New(env, SegmentSum, "segmentSum"));
}

}  // namespace deepen
