// Shared helpers for deepen's native kernels: typed-array arguments with their element type
// checked (a TypeError otherwise), and the DEEPEN_CHECK with which every kernel compares the
// sizes it is given against those arrays' lengths before touching memory, so a caller's wrong
// size is a JavaScript exception instead of a read or write past the end of a buffer. Number
// and boolean arguments are not type-checked: a missing or mistyped one reads as 0 / false
// with a pending JavaScript error (node-addon-api), which the size checks then catch or which
// makes the kernel do nothing harmful. Sizes are multiplied in 64 bits without overflow checks.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace deepen {

// Throws a JavaScript TypeError / RangeError and makes the caller return.
#define DEEPEN_THROW(env, kind, message)                              \
  do {                                                                \
    Napi::kind::New((env), (message)).ThrowAsJavaScriptException();   \
    return (env).Undefined();                                         \
  } while (0)

#define DEEPEN_CHECK(env, condition, message) \
  do {                                        \
    if (!(condition)) DEEPEN_THROW(env, RangeError, message); \
  } while (0)

// A typed array argument seen as a pointer and an element count.
template <typename T>
struct Span {
  T* data = nullptr;
  size_t length = 0;
  bool ok = false;
};

template <typename T>
constexpr napi_typedarray_type typed_array_kind();
template <>
constexpr napi_typedarray_type typed_array_kind<float>() { return napi_float32_array; }
template <>
constexpr napi_typedarray_type typed_array_kind<int32_t>() { return napi_int32_array; }
template <>
constexpr napi_typedarray_type typed_array_kind<uint8_t>() { return napi_uint8_array; }

// The element type, length and data of typed array argument `index`; false (with a
// TypeError thrown) when it is not a typed array. The data pointer already includes the
// view's byte offset: kernels work on JavaScript's memory in place.
inline bool typed_array_arg(const Napi::CallbackInfo& info, size_t index, const char* name, napi_typedarray_type& kind, size_t& length, void*& data) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsTypedArray() ||
      napi_get_typedarray_info(env, info[index], &kind, &length, &data, nullptr, nullptr) != napi_ok) {
    Napi::TypeError::New(env, std::string("argument '") + name + "' must be a typed array").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

template <typename T>
Span<T> span_of(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Span<T> out;
  napi_typedarray_type kind;
  void* data = nullptr;
  if (!typed_array_arg(info, index, name, kind, out.length, data)) return out;
  if (kind != typed_array_kind<T>()) {
    Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' has the wrong element type").ThrowAsJavaScriptException();
    return out;
  }
  out.data = static_cast<T*>(data);
  out.ok = true;
  return out;
}

// Bytes per element of the typed arrays the element-moving kernels take; 0 for any other kind.
inline size_t element_size(napi_typedarray_type kind) {
  switch (kind) {
    case napi_float32_array:
    case napi_int32_array:
    case napi_uint32_array: return 4;
    case napi_uint8_array:
    case napi_int8_array: return 1;
    default: return 0;
  }
}

// Any typed array as bytes: for kernels that only move elements (transpose, slice, gather),
// which work the same for float32 and int32 (4 bytes) or bool (1 byte).
struct RawSpan {
  uint8_t* data = nullptr;
  size_t length = 0;
  size_t element = 0;
  bool ok = false;
};

inline RawSpan raw_span_of(const Napi::CallbackInfo& info, size_t index, const char* name) {
  RawSpan out;
  napi_typedarray_type kind;
  void* data = nullptr;
  if (!typed_array_arg(info, index, name, kind, out.length, data)) return out;
  out.element = element_size(kind);
  if (out.element == 0) {
    Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' has an unsupported element type").ThrowAsJavaScriptException();
    return out;
  }
  out.data = static_cast<uint8_t*>(data);
  out.ok = true;
  return out;
}

#define DEEPEN_RAW(name, index)                                  \
  ::deepen::RawSpan name = ::deepen::raw_span_of(info, (index), #name); \
  if (!name.ok) return info.Env().Undefined()

inline int64_t int_arg(const Napi::CallbackInfo& info, size_t index) {
  return info[index].As<Napi::Number>().Int64Value();
}

inline double number_arg(const Napi::CallbackInfo& info, size_t index) {
  return info[index].As<Napi::Number>().DoubleValue();
}

inline bool bool_arg(const Napi::CallbackInfo& info, size_t index) {
  return info[index].As<Napi::Boolean>().Value();
}

// Registration hooks, one per source file.
void register_matmul(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_reductions(Napi::Env env, Napi::Object exports);
void register_fused(Napi::Env env, Napi::Object exports);
void register_layout(Napi::Env env, Napi::Object exports);
void register_decode(Napi::Env env, Napi::Object exports);

}  // namespace deepen

// Declares `name` as a Span<T> of argument `index`, returning if it is not one.
#define DEEPEN_SPAN(T, name, index)                          \
  ::deepen::Span<T> name = ::deepen::span_of<T>(info, (index), #name); \
  if (!name.ok) return info.Env().Undefined()
