// Elementwise kernels with TensorFlow.js broadcasting. The JavaScript side passes the output
// shape and each operand's strides aligned to it (0 along broadcast dimensions); here the
// dimensions are collapsed as far as the layout allows and the innermost run goes to the
// vectorised loops of kernels_impl.h.
#include <vector>

#include "common.h"
#include "dispatch.h"
#include "pool.h"

namespace deepen {
namespace {

struct Broadcast {
  std::vector<int64_t> shape, sa, sb;  // collapsed, outermost first
  size_t size = 1;
};

// Merges adjacent dimensions that are contiguous for both operands and drops size-1 ones.
Broadcast collapse(const int32_t* shape, const int32_t* sa, const int32_t* sb, size_t rank) {
  Broadcast out;
  for (size_t i = 0; i < rank; i++) {
    out.size *= size_t(shape[i]);
    if (shape[i] == 1) continue;
    if (!out.shape.empty()) {
      const size_t last = out.shape.size() - 1;
      if (out.sa[last] == int64_t(sa[i]) * shape[i] && out.sb[last] == int64_t(sb[i]) * shape[i]) {
        out.shape[last] *= shape[i];
        out.sa[last] = sa[i];
        out.sb[last] = sb[i];
        continue;
      }
    }
    out.shape.push_back(shape[i]);
    out.sa.push_back(sa[i]);
    out.sb.push_back(sb[i]);
  }
  if (out.shape.empty()) {
    out.shape.push_back(1);
    out.sa.push_back(1);
    out.sb.push_back(1);
  }
  return out;
}

// Calls inner(aOffset, bOffset, outOffset, n) for each innermost run, odometer style.
template <typename Inner>
void for_each_run(const Broadcast& bc, Inner inner) {
  const size_t rank = bc.shape.size();
  const size_t n = size_t(bc.shape[rank - 1]);
  if (bc.size == 0) return;
  std::vector<int64_t> index(rank, 0);
  int64_t aOff = 0, bOff = 0;
  for (size_t out = 0; out < bc.size; out += n) {
    inner(aOff, bOff, out, n);
    for (int64_t d = int64_t(rank) - 2; d >= 0; d--) {
      index[d]++;
      aOff += bc.sa[d];
      bOff += bc.sb[d];
      if (index[d] < bc.shape[d]) break;
      aOff -= bc.sa[d] * bc.shape[d];
      bOff -= bc.sb[d] * bc.shape[d];
      index[d] = 0;
    }
  }
}

// Shared argument handling of binary and compare: (op, a, b, y, shape, aStrides, bStrides).
template <typename Out>
bool broadcast_args(const Napi::CallbackInfo& info, Span<float>& a, Span<float>& b, Span<Out>& y, Broadcast& bc) {
  Napi::Env env = info.Env();
  a = span_of<float>(info, 1, "a");
  if (!a.ok) return false;
  b = span_of<float>(info, 2, "b");
  if (!b.ok) return false;
  y = span_of<Out>(info, 3, "y");
  if (!y.ok) return false;
  Span<int32_t> shape = span_of<int32_t>(info, 4, "shape");
  if (!shape.ok) return false;
  Span<int32_t> sa = span_of<int32_t>(info, 5, "aStrides");
  if (!sa.ok) return false;
  Span<int32_t> sb = span_of<int32_t>(info, 6, "bStrides");
  if (!sb.ok) return false;
  if (sa.length != shape.length || sb.length != shape.length) {
    Napi::RangeError::New(env, "broadcast: strides and shape differ in rank").ThrowAsJavaScriptException();
    return false;
  }
  // Bounds: the largest offset each operand reaches must lie inside it.
  size_t size = 1;
  int64_t aMax = 0, bMax = 0;
  for (size_t i = 0; i < shape.length; i++) {
    if (shape.data[i] < 0 || sa.data[i] < 0 || sb.data[i] < 0) {
      Napi::RangeError::New(env, "broadcast: negative shape or stride").ThrowAsJavaScriptException();
      return false;
    }
    size *= size_t(shape.data[i]);
    if (shape.data[i] > 0) {
      aMax += int64_t(sa.data[i]) * (shape.data[i] - 1);
      bMax += int64_t(sb.data[i]) * (shape.data[i] - 1);
    }
  }
  if (y.length != size || (size > 0 && (size_t(aMax) >= a.length || size_t(bMax) >= b.length))) {
    Napi::RangeError::New(env, "broadcast: operand or output size does not match the shape").ThrowAsJavaScriptException();
    return false;
  }
  bc = collapse(shape.data, sa.data, sb.data, shape.length);
  return true;
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  const int op = int(int_arg(info, 0));
  DEEPEN_SPAN(float, x, 1);
  DEEPEN_SPAN(float, y, 2);
  DEEPEN_CHECK(info.Env(), x.length == y.length, "unary: input and output sizes differ");
  const Isa& impl = isa();
  parallel_for(x.length, 1 << 16, [&](size_t begin, size_t end) { impl.unary(op, x.data + begin, y.data + begin, end - begin); });
  return info.Env().Undefined();
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Span<float> a, b, y;
  Broadcast bc;
  if (!broadcast_args<float>(info, a, b, y, bc)) return info.Env().Undefined();
  const int op = int(int_arg(info, 0));
  const Isa& impl = isa();
  const int64_t sa = bc.sa.back(), sb = bc.sb.back();
  for_each_run(bc, [&](int64_t ao, int64_t bo, size_t out, size_t n) {
    if (sa <= 1 && sb <= 1) return impl.binary(op, a.data + ao, int(sa), b.data + bo, int(sb), y.data + out, n);
    for (size_t i = 0; i < n; i++) impl.binary(op, a.data + ao + i * sa, 1, b.data + bo + i * sb, 1, y.data + out + i, 1);
  });
  return info.Env().Undefined();
}

Napi::Value Compare(const Napi::CallbackInfo& info) {
  Span<float> a, b;
  Span<uint8_t> y;
  Broadcast bc;
  if (!broadcast_args<uint8_t>(info, a, b, y, bc)) return info.Env().Undefined();
  const int op = int(int_arg(info, 0));
  const Isa& impl = isa();
  const int64_t sa = bc.sa.back(), sb = bc.sb.back();
  for_each_run(bc, [&](int64_t ao, int64_t bo, size_t out, size_t n) {
    if (sa <= 1 && sb <= 1) return impl.compare(op, a.data + ao, int(sa), b.data + bo, int(sb), y.data + out, n);
    for (size_t i = 0; i < n; i++) impl.compare(op, a.data + ao + i * sa, 1, b.data + bo + i * sb, 1, y.data + out + i, 1);
  });
  return info.Env().Undefined();
}

// select(condition, a, b, y): y = condition ? a : b, all the same size (Select / where).
Napi::Value Select(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(uint8_t, condition, 0);
  DEEPEN_SPAN(float, a, 1);
  DEEPEN_SPAN(float, b, 2);
  DEEPEN_SPAN(float, y, 3);
  DEEPEN_CHECK(info.Env(), condition.length == y.length && a.length == y.length && b.length == y.length, "select: sizes differ");
  for (size_t i = 0; i < y.length; i++) y.data[i] = condition.data[i] ? a.data[i] : b.data[i];
  return info.Env().Undefined();
}

Napi::Value IsaName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa().name); }

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("unary", Napi::Function::New(env, Unary, "unary"));
  exports.Set("binary", Napi::Function::New(env, Binary, "binary"));
  exports.Set("compare", Napi::Function::New(env, Compare, "compare"));
  exports.Set("select", Napi::Function::New(env, Select, "select"));
  exports.Set("isa", Napi::Function::New(env, IsaName, "isa"));
}

}  // namespace deepen
