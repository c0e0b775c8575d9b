// Matrix products through OpenBLAS: every MatMul / BatchMatMul of the model, forward and
// backward (the gradients are products with transposed operands, which BLAS reads in place).
#include <cblas.h>

#include "common.h"
#include "gemv.h"
#include "pool.h"

namespace deepen {
namespace {

// batchedGemm(a, b, c, M, N, K, transA, transB, aOffsets, bOffsets)
// For each i: c[i*M*N ...] = op(a at aOffsets[i]) x op(b at bOffsets[i]), row-major, where
// op(a) is [M, K] (a stored [K, M] when transA) and op(b) is [K, N] (stored [N, K] when transB).
// Offsets let the caller express batch broadcasting without copies.
Napi::Value BatchedGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, a, 0);
  DEEPEN_SPAN(float, b, 1);
  DEEPEN_SPAN(float, c, 2);
  const int64_t M = int_arg(info, 3), N = int_arg(info, 4), K = int_arg(info, 5);
  const bool transA = bool_arg(info, 6), transB = bool_arg(info, 7);
  DEEPEN_SPAN(int32_t, aOffsets, 8);
  DEEPEN_SPAN(int32_t, bOffsets, 9);
  const size_t batch = aOffsets.length;
  DEEPEN_CHECK(env, M >= 0 && N >= 0 && K >= 0, "batchedGemm: negative dimension");
  DEEPEN_CHECK(env, bOffsets.length == batch, "batchedGemm: offset arrays differ in length");
  DEEPEN_CHECK(env, c.length >= batch * size_t(M * N), "batchedGemm: output too small");
  for (size_t i = 0; i < batch; i++) {
    DEEPEN_CHECK(env, aOffsets.data[i] >= 0 && size_t(aOffsets.data[i]) + size_t(M * K) <= a.length, "batchedGemm: a offset out of range");
    DEEPEN_CHECK(env, bOffsets.data[i] >= 0 && size_t(bOffsets.data[i]) + size_t(K * N) <= b.length, "batchedGemm: b offset out of range");
  }
  if (M == 0 || N == 0) return env.Undefined();
  const int lda = transA ? int(M) : int(K);
  const int ldb = transB ? int(K) : int(N);
  for (size_t i = 0; i < batch; i++) {
    float* out = c.data + i * size_t(M * N);
    if (K == 0) {
      std::fill(out, out + M * N, 0.0f);
      continue;
    }
    if (M == 1) {
      // One row (a decode step's projections): a[0, :] is K contiguous values whether or not
      // a is transposed, and a matrix-vector product streams b once where SGEMM would not.
      gemv(a.data + aOffsets.data[i], b.data + bOffsets.data[i], size_t(K), size_t(N), transB, nullptr, out);
      continue;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), 1.0f,
                a.data + aOffsets.data[i], lda, b.data + bOffsets.data[i], ldb, 0.0f, out, int(N));
  }
  return env.Undefined();
}

Napi::Value BlasInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("config", Napi::String::New(env, openblas_get_config()));
  out.Set("core", Napi::String::New(env, openblas_get_corename()));
  out.Set("threads", Napi::Number::New(env, openblas_get_num_threads()));
  out.Set("poolThreads", Napi::Number::New(env, pool_threads()));
  out.Set("parallel", Napi::Number::New(env, openblas_get_parallel()));
  return out;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t threads = int_arg(info, 0);
  DEEPEN_CHECK(info.Env(), threads >= 1, "setThreads: need at least one thread");
  openblas_set_num_threads(int(threads));
  set_pool_threads(int(threads));
  return info.Env().Undefined();
}

}  // namespace

void register_matmul(Napi::Env env, Napi::Object exports) {
  exports.Set("batchedGemm", Napi::Function::New(env, BatchedGemm, "batchedGemm"));
  exports.Set("blasInfo", Napi::Function::New(env, BlasInfo, "blasInfo"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
}

}  // namespace deepen
