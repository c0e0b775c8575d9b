// Fused kernels for the LLaMA training step: cross-entropy over the vocabulary without
// materialising the softmax, RMSNorm, SwiGLU, rotary embeddings, causal attention (scores,
// softmax and weighted sum per head, recomputing the probabilities in the backward pass from
// each row's logsumexp instead of storing them) and the Adam update. Each forward kernel has
// its backward here; src/fused/ registers them with TensorFlow.js and its gradient tape.
#include <cblas.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common.h"
#include "dispatch.h"
#include "pool.h"

namespace deepen {
namespace {

// crossEntropy(logits, targets, loss, lse, rows, V, ignore)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, logits, 0);
  DEEPEN_SPAN(int32_t, targets, 1);
  DEEPEN_SPAN(float, loss, 2);
  DEEPEN_SPAN(float, lse, 3);
  const int64_t rows = int_arg(info, 4), V = int_arg(info, 5);
  const int32_t ignore = int32_t(int_arg(info, 6));
  DEEPEN_CHECK(env, rows >= 0 && V > 0 && logits.length == size_t(rows * V) && targets.length == size_t(rows) && loss.length == size_t(rows) &&
                        lse.length == size_t(rows),
               "crossEntropy: sizes do not match");
  for (int64_t r = 0; r < rows; r++) {
    const int32_t t = targets.data[r];
    if (t != ignore && (t < 0 || t >= V)) {
      DEEPEN_THROW(env, RangeError, "cross-entropy: target " + std::to_string(t) + " at row " + std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
    }
  }
  const Isa& impl = isa();
  // Rows split across the pool: each row is independent, and at vocabulary size the kernel is
  // bound by memory bandwidth and page faults, which two cores serve better than one.
  parallel_for(size_t(rows), size_t(std::max<int64_t>(1, 65536 / V)), [&](size_t begin, size_t end) {
    impl.cross_entropy_forward(logits.data + begin * V, targets.data + begin, end - begin, size_t(V), ignore, loss.data + begin, lse.data + begin);
  });
  return env.Undefined();
}

// crossEntropyGrad(logits, targets, lse, dy, dx, rows, V, ignore)
Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, logits, 0);
  DEEPEN_SPAN(int32_t, targets, 1);
  DEEPEN_SPAN(float, lse, 2);
  DEEPEN_SPAN(float, dy, 3);
  DEEPEN_SPAN(float, dx, 4);
  const int64_t rows = int_arg(info, 5), V = int_arg(info, 6);
  const int32_t ignore = int32_t(int_arg(info, 7));
  DEEPEN_CHECK(env, rows >= 0 && V > 0 && logits.length == size_t(rows * V) && dx.length == logits.length && targets.length == size_t(rows) &&
                        lse.length == size_t(rows) && dy.length == size_t(rows),
               "crossEntropyGrad: sizes do not match");
  for (int64_t r = 0; r < rows; r++) {
    const int32_t t = targets.data[r];
    DEEPEN_CHECK(env, t == ignore || (t >= 0 && t < V), "crossEntropyGrad: target outside the vocabulary");
  }
  const Isa& impl = isa();
  parallel_for(size_t(rows), size_t(std::max<int64_t>(1, 65536 / V)), [&](size_t begin, size_t end) {
    impl.cross_entropy_backward(logits.data + begin * V, targets.data + begin, lse.data + begin, dy.data + begin, end - begin, size_t(V), ignore,
                                dx.data + begin * V);
  });
  return env.Undefined();
}

// rmsNorm(x, w, y, rstd, rows, H, eps)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(float, w, 1);
  DEEPEN_SPAN(float, y, 2);
  DEEPEN_SPAN(float, rstd, 3);
  const int64_t rows = int_arg(info, 4), H = int_arg(info, 5);
  const float eps = float(number_arg(info, 6));
  DEEPEN_CHECK(info.Env(), rows >= 0 && H > 0 && x.length == size_t(rows * H) && y.length == x.length && w.length == size_t(H) && rstd.length == size_t(rows),
               "rmsNorm: sizes do not match");
  const Isa& impl = isa();
  parallel_for(size_t(rows), size_t(std::max<int64_t>(1, 65536 / H)), [&](size_t begin, size_t end) {
    impl.rms_norm_forward(x.data + begin * H, w.data, end - begin, size_t(H), eps, y.data + begin * H, rstd.data + begin);
  });
  return info.Env().Undefined();
}

// rmsNormGrad(x, w, rstd, dy, dx, dw, rows, H)
Napi::Value RmsNormGrad(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(float, w, 1);
  DEEPEN_SPAN(float, rstd, 2);
  DEEPEN_SPAN(float, dy, 3);
  DEEPEN_SPAN(float, dx, 4);
  DEEPEN_SPAN(float, dw, 5);
  const int64_t rows = int_arg(info, 6), H = int_arg(info, 7);
  DEEPEN_CHECK(info.Env(), rows >= 0 && H > 0 && x.length == size_t(rows * H) && dy.length == x.length && dx.length == x.length && w.length == size_t(H) &&
                               dw.length == size_t(H) && rstd.length == size_t(rows),
               "rmsNormGrad: sizes do not match");
  // Each thread sums the weight gradient of its rows apart; the partial sums are added after.
  const Isa& impl = isa();
  const size_t parts = size_t(pool_threads());
  std::vector<float> partial(parts * size_t(H), 0.0f);
  const size_t per = (size_t(rows) + parts - 1) / parts;
  parallel_for(parts, 1, [&](size_t first, size_t last) {
    for (size_t part = first; part < last; part++) {
      const size_t begin = std::min(size_t(rows), part * per), end = std::min(size_t(rows), begin + per);
      if (begin < end)
        impl.rms_norm_backward(x.data + begin * H, w.data, rstd.data + begin, dy.data + begin * H, end - begin, size_t(H), dx.data + begin * H,
                               partial.data() + part * H);
    }
  });
  std::fill(dw.data, dw.data + H, 0.0f);
  for (size_t part = 0; part < parts; part++)
    for (int64_t i = 0; i < H; i++) dw.data[i] += partial[part * size_t(H) + size_t(i)];
  return info.Env().Undefined();
}

// adam(p, g, m, v, pOut, mOut, vOut, lr, beta1, beta2, eps, correction1, correction2, decay, decoupled)
Napi::Value Adam(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, p, 0);
  DEEPEN_SPAN(float, g, 1);
  DEEPEN_SPAN(float, m, 2);
  DEEPEN_SPAN(float, v, 3);
  DEEPEN_SPAN(float, pOut, 4);
  DEEPEN_SPAN(float, mOut, 5);
  DEEPEN_SPAN(float, vOut, 6);
  const size_t n = p.length;
  DEEPEN_CHECK(info.Env(), g.length == n && m.length == n && v.length == n && pOut.length == n && mOut.length == n && vOut.length == n, "adam: sizes differ");
  const float lr = float(number_arg(info, 7)), b1 = float(number_arg(info, 8)), b2 = float(number_arg(info, 9)), eps = float(number_arg(info, 10));
  const float c1 = float(number_arg(info, 11)), c2 = float(number_arg(info, 12)), decay = float(number_arg(info, 13));
  const bool decoupled = bool_arg(info, 14);
  const Isa& impl = isa();
  parallel_for(n, 1 << 16, [&](size_t begin, size_t end) {
    impl.adam(p.data + begin, g.data + begin, m.data + begin, v.data + begin, end - begin, lr, b1, b2, eps, c1, c2, decay, decoupled, pOut.data + begin,
              mOut.data + begin, vOut.data + begin);
  });
  return info.Env().Undefined();
}

// swiglu(gate, up, h)
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, gate, 0);
  DEEPEN_SPAN(float, up, 1);
  DEEPEN_SPAN(float, h, 2);
  DEEPEN_CHECK(info.Env(), up.length == gate.length && h.length == gate.length, "swiglu: sizes differ");
  const Isa& impl = isa();
  parallel_for(gate.length, 1 << 16, [&](size_t begin, size_t end) { impl.swiglu_forward(gate.data + begin, up.data + begin, end - begin, h.data + begin); });
  return info.Env().Undefined();
}

// swigluGrad(gate, up, dh, dgate, dup)
Napi::Value SwigluGrad(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, gate, 0);
  DEEPEN_SPAN(float, up, 1);
  DEEPEN_SPAN(float, dh, 2);
  DEEPEN_SPAN(float, dgate, 3);
  DEEPEN_SPAN(float, dup, 4);
  const size_t n = gate.length;
  DEEPEN_CHECK(info.Env(), up.length == n && dh.length == n && dgate.length == n && dup.length == n, "swigluGrad: sizes differ");
  const Isa& impl = isa();
  parallel_for(n, 1 << 16, [&](size_t begin, size_t end) {
    impl.swiglu_backward(gate.data + begin, up.data + begin, dh.data + begin, end - begin, dgate.data + begin, dup.data + begin);
  });
  return info.Env().Undefined();
}

// rope(x, cos, sin, y, outer, T, D, backward)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  DEEPEN_SPAN(float, x, 0);
  DEEPEN_SPAN(float, cos, 1);
  DEEPEN_SPAN(float, sin, 2);
  DEEPEN_SPAN(float, y, 3);
  const int64_t outer = int_arg(info, 4), T = int_arg(info, 5), D = int_arg(info, 6);
  DEEPEN_CHECK(info.Env(), outer >= 0 && T >= 0 && D > 0 && D % 2 == 0 && x.length == size_t(outer * T * D) && y.length == x.length &&
                               cos.length == size_t(T * D) && sin.length == cos.length,
               "rope: sizes do not match");
  const Isa& impl = isa();
  const bool backward = bool_arg(info, 7);
  const size_t block = size_t(T * D);
  parallel_for(size_t(outer), std::max<size_t>(1, 65536 / std::max<size_t>(block, 1)), [&](size_t begin, size_t end) {
    impl.rope(x.data + begin * block, cos.data, sin.data, end - begin, size_t(T), size_t(D), backward, y.data + begin * block);
  });
  return info.Env().Undefined();
}

struct AttentionShape {
  int64_t B, nH, nKV, T, S, hd, offset;
  float scale;
};

bool attention_shape(const Napi::CallbackInfo& info, size_t first, AttentionShape& s) {
  s.B = int_arg(info, first);
  s.nH = int_arg(info, first + 1);
  s.nKV = int_arg(info, first + 2);
  s.T = int_arg(info, first + 3);
  s.S = int_arg(info, first + 4);
  s.hd = int_arg(info, first + 5);
  s.offset = int_arg(info, first + 6);
  s.scale = float(number_arg(info, first + 7));
  const bool ok = s.B >= 0 && s.nH > 0 && s.nKV > 0 && s.nH % s.nKV == 0 && s.T >= 0 && s.S >= 0 && s.hd > 0 && s.offset >= 0 && s.offset + s.T <= s.S;
  if (!ok) Napi::RangeError::New(info.Env(), "attention: bad shape (heads must divide, offset + T <= S)").ThrowAsJavaScriptException();
  return ok;
}

// attention(q, k, v, out, lse, B, nH, nKV, T, S, hd, offset, scale)
// q [B, nH, T, hd], k and v [B, nKV, S, hd], out [B, nH, T, hd], lse [B, nH, T]. Query t sits at
// position offset + t and sees keys 0..offset + t; query head h reads kv head h / (nH / nKV).
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, q, 0);
  DEEPEN_SPAN(float, k, 1);
  DEEPEN_SPAN(float, v, 2);
  DEEPEN_SPAN(float, out, 3);
  DEEPEN_SPAN(float, lse, 4);
  AttentionShape s;
  if (!attention_shape(info, 5, s)) return env.Undefined();
  const size_t qSize = size_t(s.B * s.nH * s.T * s.hd), kvSize = size_t(s.B * s.nKV * s.S * s.hd);
  DEEPEN_CHECK(env, q.length == qSize && out.length == qSize && k.length == kvSize && v.length == kvSize && lse.length == size_t(s.B * s.nH * s.T),
               "attention: sizes do not match");
  if (s.T == 0) return env.Undefined();
  const Isa& impl = isa();
  const int64_t rep = s.nH / s.nKV;
  std::vector<float> scores(size_t(s.T * s.S));
  for (int64_t b = 0; b < s.B; b++) {
    for (int64_t h = 0; h < s.nH; h++) {
      const int64_t j = h / rep;
      const float* qh = q.data + ((b * s.nH + h) * s.T) * s.hd;
      const float* kj = k.data + ((b * s.nKV + j) * s.S) * s.hd;
      const float* vj = v.data + ((b * s.nKV + j) * s.S) * s.hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.T), int(s.S), int(s.hd), 1.0f, qh, int(s.hd), kj, int(s.hd), 0.0f, scores.data(), int(s.S));
      impl.causal_softmax_rows(scores.data(), size_t(s.T), size_t(s.S), size_t(s.offset), s.scale, lse.data + (b * s.nH + h) * s.T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(s.T), int(s.hd), int(s.S), 1.0f, scores.data(), int(s.S), vj, int(s.hd), 0.0f,
                  out.data + ((b * s.nH + h) * s.T) * s.hd, int(s.hd));
    }
  }
  return env.Undefined();
}

// attentionGrad(q, k, v, dout, lse, dq, dk, dv, B, nH, nKV, T, S, hd, offset, scale)
Napi::Value AttentionGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DEEPEN_SPAN(float, q, 0);
  DEEPEN_SPAN(float, k, 1);
  DEEPEN_SPAN(float, v, 2);
  DEEPEN_SPAN(float, dout, 3);
  DEEPEN_SPAN(float, lse, 4);
  DEEPEN_SPAN(float, dq, 5);
  DEEPEN_SPAN(float, dk, 6);
  DEEPEN_SPAN(float, dv, 7);
  AttentionShape s;
  if (!attention_shape(info, 8, s)) return env.Undefined();
  const size_t qSize = size_t(s.B * s.nH * s.T * s.hd), kvSize = size_t(s.B * s.nKV * s.S * s.hd);
  DEEPEN_CHECK(env, q.length == qSize && dout.length == qSize && dq.length == qSize && k.length == kvSize && v.length == kvSize && dk.length == kvSize &&
                        dv.length == kvSize && lse.length == size_t(s.B * s.nH * s.T),
               "attentionGrad: sizes do not match");
  std::fill(dk.data, dk.data + kvSize, 0.0f);
  std::fill(dv.data, dv.data + kvSize, 0.0f);
  if (s.T == 0) return env.Undefined();
  const Isa& impl = isa();
  const int64_t rep = s.nH / s.nKV;
  const int T = int(s.T), S = int(s.S), hd = int(s.hd);
  std::vector<float> probs(size_t(s.T * s.S)), grad(size_t(s.T * s.S));
  for (int64_t b = 0; b < s.B; b++) {
    for (int64_t h = 0; h < s.nH; h++) {
      const int64_t j = h / rep;
      const size_t qOff = size_t(((b * s.nH + h) * s.T) * s.hd), kvOff = size_t(((b * s.nKV + j) * s.S) * s.hd);
      const float* qh = q.data + qOff;
      const float* doh = dout.data + qOff;
      const float* kj = k.data + kvOff;
      const float* vj = v.data + kvOff;
      // P again from the scores and the saved logsumexp.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, hd, 1.0f, qh, hd, kj, hd, 0.0f, probs.data(), S);
      impl.causal_probs_from_lse(probs.data(), size_t(T), size_t(S), size_t(s.offset), s.scale, lse.data + (b * s.nH + h) * s.T);
      // dV_j += P^T dO
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, hd, T, 1.0f, probs.data(), S, doh, hd, 1.0f, dv.data + kvOff, hd);
      // dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, hd, 1.0f, doh, hd, vj, hd, 0.0f, grad.data(), S);
      impl.softmax_backward_rows(probs.data(), grad.data(), size_t(T), size_t(S), s.scale);
      // dQ = dS K, dK_j += dS^T Q
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, S, 1.0f, grad.data(), S, kj, hd, 0.0f, dq.data + qOff, hd);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, hd, T, 1.0f, grad.data(), S, qh, hd, 1.0f, dk.data + kvOff, hd);
    }
  }
  return env.Undefined();
}

}  // namespace

void register_fused(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad, "crossEntropyGrad"));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm, "rmsNorm"));
  exports.Set("rmsNormGrad", Napi::Function::New(env, RmsNormGrad, "rmsNormGrad"));
  exports.Set("adam", Napi::Function::New(env, Adam, "adam"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("swigluGrad", Napi::Function::New(env, SwigluGrad, "swigluGrad"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionGrad", Napi::Function::New(env, AttentionGrad, "attentionGrad"));
}

}  // namespace deepen
