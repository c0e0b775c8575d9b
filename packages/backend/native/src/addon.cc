// deepen's native CPU engine for TensorFlow.js. The JavaScript side (src/native/) owns the
// tensors; every function here reads and writes typed arrays in place (zero-copy) and
// validates sizes so that a wrong call throws instead of corrupting memory.
#include "common.h"

namespace deepen {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  register_matmul(env, exports);
  register_elementwise(env, exports);
  register_reductions(env, exports);
  register_fused(env, exports);
  register_layout(env, exports);
  register_decode(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 5));
  return exports;
}

NODE_API_MODULE(deepen_native, Init)

}  // namespace deepen
