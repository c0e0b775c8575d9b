// The arithmetic of deepen's native kernels, free of N-API. This header is compiled three
// times (isa_avx512.cc, isa_avx2.cc, isa_baseline.cc), each under its own `#pragma GCC target`
// and namespace, and dispatch.cc picks the widest one the CPU supports at load time: one
// portable binary that still uses AVX-512 where it exists. Loops are written so GCC's
// auto-vectoriser handles them (no early exits, no calls in the hot path).
//
// Included only by the isa_*.cc files, after the standard headers and the target pragma.
#ifndef DEEPEN_ISA
#error "define DEEPEN_ISA before including kernels_impl.h"
#endif

namespace deepen {
namespace DEEPEN_ISA {

// exp(x) in float32 to about 2 ulp, branch-free so it vectorises: 2^n * p(r) with
// r = x - n ln2 in [-ln2/2, ln2/2] and Cephes' degree-6 polynomial. 2^n is applied as two
// factors so that every n from -150 to 128 stays representable (denormal results included).
// NaN stays NaN, x > 88.72 gives inf and x < -103.9 gives 0, as expf does.
static inline float fast_exp(float x) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693145751953125f;
  const float ln2_lo = 1.428606765330187045e-06f;
  const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float hi = 88.72283935546875f, lo = -103.97208404541015625f;
  float clamped = x < lo ? lo : x;
  clamped = clamped > hi ? hi : clamped;
  float n = (clamped * log2e + round_magic) - round_magic;
  float r = clamped - n * ln2_hi;
  r = r - n * ln2_lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = int32_t(n);
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const int32_t bits1 = (n1 + 127) << 23, bits2 = (n2 + 127) << 23;
  float s1, s2;
  __builtin_memcpy(&s1, &bits1, sizeof(s1));
  __builtin_memcpy(&s2, &bits2, sizeof(s2));
  float result = p * s1 * s2;
  result = x < lo ? 0.0f : result;
  result = x > hi ? __builtin_inff() : result;
  return x != x ? x : result;
}

static inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// ---------------------------------------------------------------- elementwise

enum UnaryOp { U_EXP, U_LOG, U_NEG, U_SIGMOID, U_SQRT, U_RSQRT, U_SQUARE, U_ABS, U_RECIPROCAL, U_TANH, U_RELU, U_LOG1P, U_SILU };

void unary(int op, const float* x, float* y, size_t n) {
  switch (op) {
    case U_EXP: for (size_t i = 0; i < n; i++) y[i] = fast_exp(x[i]); break;
    case U_LOG: for (size_t i = 0; i < n; i++) y[i] = std::log(x[i]); break;
    case U_NEG: for (size_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case U_SIGMOID: for (size_t i = 0; i < n; i++) y[i] = fast_sigmoid(x[i]); break;
    case U_SQRT: for (size_t i = 0; i < n; i++) y[i] = std::sqrt(x[i]); break;
    case U_RSQRT: for (size_t i = 0; i < n; i++) y[i] = 1.0f / std::sqrt(x[i]); break;
    case U_SQUARE: for (size_t i = 0; i < n; i++) y[i] = x[i] * x[i]; break;
    case U_ABS: for (size_t i = 0; i < n; i++) y[i] = std::fabs(x[i]); break;
    case U_RECIPROCAL: for (size_t i = 0; i < n; i++) y[i] = 1.0f / x[i]; break;
    case U_TANH: for (size_t i = 0; i < n; i++) y[i] = std::tanh(x[i]); break;
    case U_RELU: for (size_t i = 0; i < n; i++) y[i] = x[i] != x[i] ? x[i] : (x[i] > 0.0f ? x[i] : 0.0f); break;
    case U_LOG1P: for (size_t i = 0; i < n; i++) y[i] = std::log1p(x[i]); break;
    case U_SILU: for (size_t i = 0; i < n; i++) y[i] = x[i] * fast_sigmoid(x[i]); break;
  }
}

enum BinaryOp { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_SQDIFF, B_POW };

template <typename Out, typename F>
static inline void broadcast_loop(const float* a, int sa, const float* b, int sb, Out* y, size_t n, F f) {
  // The three layouts broadcasting produces in the innermost dimension, each its own loop so
  // the vectoriser sees unit strides.
  if (sa == 1 && sb == 1) {
    for (size_t i = 0; i < n; i++) y[i] = f(a[i], b[i]);
  } else if (sa == 1) {
    const float bv = b[0];
    for (size_t i = 0; i < n; i++) y[i] = f(a[i], bv);
  } else if (sb == 1) {
    const float av = a[0];
    for (size_t i = 0; i < n; i++) y[i] = f(av, b[i]);
  } else {
    const Out v = f(a[0], b[0]);
    for (size_t i = 0; i < n; i++) y[i] = v;
  }
}

static inline float nan_max(float a, float b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
static inline float nan_min(float a, float b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }

void binary(int op, const float* a, int sa, const float* b, int sb, float* y, size_t n) {
  switch (op) {
    case B_ADD: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return u + v; }); break;
    case B_SUB: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return u - v; }); break;
    case B_MUL: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return u * v; }); break;
    case B_DIV: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return u / v; }); break;
    case B_MAX: broadcast_loop(a, sa, b, sb, y, n, nan_max); break;
    case B_MIN: broadcast_loop(a, sa, b, sb, y, n, nan_min); break;
    case B_SQDIFF: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return (u - v) * (u - v); }); break;
    case B_POW: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) { return std::pow(u, v); }); break;
  }
}

enum CompareOp { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

void compare(int op, const float* a, int sa, const float* b, int sb, uint8_t* y, size_t n) {
  switch (op) {
    case C_EQ: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u == v; }); break;
    case C_NE: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u != v; }); break;
    case C_LT: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u < v; }); break;
    case C_LE: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u <= v; }); break;
    case C_GT: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u > v; }); break;
    case C_GE: broadcast_loop(a, sa, b, sb, y, n, [](float u, float v) -> uint8_t { return u >= v; }); break;
  }
}

// ---------------------------------------------------------------- reductions

enum ReduceOp { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD };

// x is [outer, reduce, inner] row-major; y is [outer, inner]. inner == 1 reduces rows.
// Sums accumulate in double per output element for rows (long vocabularies) and in float
// across rows of a column (vectorised over inner), matching float32 frameworks closely.
void reduce(int op, const float* x, float* y, size_t outer, size_t reduce_n, size_t inner) {
  for (size_t o = 0; o < outer; o++) {
    const float* base = x + o * reduce_n * inner;
    float* out = y + o * inner;
    if (inner == 1) {
      if (op == R_SUM || op == R_MEAN) {
        // Eight partial sums keep the loop vectorisable without -ffast-math reassociation.
        float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t r = 0;
        for (; r + 8 <= reduce_n; r += 8)
          for (int k = 0; k < 8; k++) partial[k] += base[r + k];
        double total = 0;
        for (int k = 0; k < 8; k++) total += partial[k];
        for (; r < reduce_n; r++) total += base[r];
        out[0] = op == R_MEAN ? float(total / double(reduce_n)) : float(total);
      } else if (op == R_PROD) {
        double total = 1;
        for (size_t r = 0; r < reduce_n; r++) total *= base[r];
        out[0] = float(total);
      } else {
        float best = reduce_n > 0 ? base[0] : (op == R_MAX ? -__builtin_inff() : __builtin_inff());
        bool nan = false;
        for (size_t r = 0; r < reduce_n; r++) {
          const float v = base[r];
          nan |= v != v;
          best = op == R_MAX ? (v > best ? v : best) : (v < best ? v : best);
        }
        out[0] = nan ? __builtin_nanf("") : best;
      }
      continue;
    }
    if (op == R_MAX || op == R_MIN) {
      for (size_t i = 0; i < inner; i++) out[i] = reduce_n > 0 ? base[i] : (op == R_MAX ? -__builtin_inff() : __builtin_inff());
      for (size_t r = 1; r < reduce_n; r++) {
        const float* row = base + r * inner;
        if (op == R_MAX)
          for (size_t i = 0; i < inner; i++) out[i] = nan_max(out[i], row[i]);
        else
          for (size_t i = 0; i < inner; i++) out[i] = nan_min(out[i], row[i]);
      }
    } else if (op == R_PROD) {
      for (size_t i = 0; i < inner; i++) out[i] = 1.0f;
      for (size_t r = 0; r < reduce_n; r++)
        for (size_t i = 0; i < inner; i++) out[i] *= base[r * inner + i];
    } else {
      for (size_t i = 0; i < inner; i++) out[i] = 0.0f;
      for (size_t r = 0; r < reduce_n; r++) {
        const float* row = base + r * inner;
        for (size_t i = 0; i < inner; i++) out[i] += row[i];
      }
      if (op == R_MEAN) {
        const float scale = 1.0f / float(reduce_n);
        for (size_t i = 0; i < inner; i++) out[i] *= scale;
      }
    }
  }
}

// Softmax (or log-softmax) of each row of x [rows, cols].
void softmax_rows(const float* x, float* y, size_t rows, size_t cols, bool log) {
  for (size_t r = 0; r < rows; r++) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    float m = -__builtin_inff();
    for (size_t c = 0; c < cols; c++) m = in[c] > m ? in[c] : m;
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t c = 0;
    if (log) {
      for (; c + 8 <= cols; c += 8)
        for (int k = 0; k < 8; k++) partial[k] += fast_exp(in[c + k] - m);
    } else {
      for (; c + 8 <= cols; c += 8)
        for (int k = 0; k < 8; k++) {
          const float e = fast_exp(in[c + k] - m);
          out[c + k] = e;
          partial[k] += e;
        }
    }
    float sum = 0;
    for (int k = 0; k < 8; k++) sum += partial[k];
    for (; c < cols; c++) {
      const float e = fast_exp(in[c] - m);
      if (!log) out[c] = e;
      sum += e;
    }
    if (log) {
      const float shift = m + std::log(sum);
      for (size_t i = 0; i < cols; i++) out[i] = in[i] - shift;
    } else {
      const float inv = 1.0f / sum;
      for (size_t i = 0; i < cols; i++) out[i] *= inv;
    }
  }
}

// ---------------------------------------------------------------- fused model kernels

// Sum of e^(x[c] - m) over a row, vectorised with eight partial sums.
static inline float row_sum_exp(const float* x, size_t cols, float m) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t c = 0;
  for (; c + 8 <= cols; c += 8)
    for (int k = 0; k < 8; k++) partial[k] += fast_exp(x[c + k] - m);
  float sum = 0;
  for (int k = 0; k < 8; k++) sum += partial[k];
  for (; c < cols; c++) sum += fast_exp(x[c] - m);
  return sum;
}

static inline float row_max(const float* x, size_t cols) {
  float m = -__builtin_inff();
  for (size_t c = 0; c < cols; c++) m = x[c] > m ? x[c] : m;
  return m;
}

// Cross-entropy of each row of logits [rows, V] against targets: loss = logsumexp - logit[t],
// 0 where t == ignore; also the row's logsumexp, which the backward pass reuses.
void cross_entropy_forward(const float* logits, const int32_t* targets, size_t rows, size_t V, int32_t ignore, float* loss, float* lse) {
  for (size_t r = 0; r < rows; r++) {
    const float* x = logits + r * V;
    const float m = row_max(x, V);
    const float l = m + std::log(row_sum_exp(x, V, m));
    lse[r] = l;
    const int32_t t = targets[r];
    loss[r] = t == ignore ? 0.0f : l - x[t];
  }
}

// d loss / d logits = (softmax - onehot(t)) * dy per row; 0 on ignored rows.
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, const float* dy, size_t rows, size_t V, int32_t ignore,
                            float* dx) {
  for (size_t r = 0; r < rows; r++) {
    const float* x = logits + r * V;
    float* d = dx + r * V;
    const int32_t t = targets[r];
    if (t == ignore) {
      for (size_t c = 0; c < V; c++) d[c] = 0.0f;
      continue;
    }
    const float l = lse[r], g = dy[r];
    for (size_t c = 0; c < V; c++) d[c] = fast_exp(x[c] - l) * g;
    d[t] -= g;
  }
}

// RMSNorm of rows of x [rows, H]: y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps).
void rms_norm_forward(const float* x, const float* w, size_t rows, size_t H, float eps, float* y, float* rstd) {
  for (size_t r = 0; r < rows; r++) {
    const float* in = x + r * H;
    float* out = y + r * H;
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t c = 0;
    for (; c + 8 <= H; c += 8)
      for (int k = 0; k < 8; k++) partial[k] += in[c + k] * in[c + k];
    float ss = 0;
    for (int k = 0; k < 8; k++) ss += partial[k];
    for (; c < H; c++) ss += in[c] * in[c];
    const float s = 1.0f / std::sqrt(ss / float(H) + eps);
    rstd[r] = s;
    for (size_t i = 0; i < H; i++) out[i] = in[i] * s * w[i];
  }
}

// Backward of rms_norm_forward. With xhat = x * rstd and g = dy * w:
// dx = rstd * (g - xhat * mean(g * xhat)), dw = sum over rows of dy * xhat.
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, size_t rows, size_t H, float* dx, float* dw) {
  for (size_t i = 0; i < H; i++) dw[i] = 0.0f;
  for (size_t r = 0; r < rows; r++) {
    const float* in = x + r * H;
    const float* g = dy + r * H;
    float* out = dx + r * H;
    const float s = rstd[r];
    float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t c = 0;
    for (; c + 8 <= H; c += 8)
      for (int k = 0; k < 8; k++) partial[k] += g[c + k] * w[c + k] * in[c + k];
    float dot = 0;
    for (int k = 0; k < 8; k++) dot += partial[k];
    for (; c < H; c++) dot += g[c] * w[c] * in[c];
    // mean(g * xhat) = s * dot / H
    const float coef = s * s * dot / float(H);
    for (size_t i = 0; i < H; i++) {
      out[i] = s * (g[i] * w[i] - in[i] * coef);
      dw[i] += g[i] * in[i] * s;
    }
  }
}

// One Adam / AdamW step for n values, writing new parameters and moments.
// update = (m' / c1) / (sqrt(v' / c2) + eps), as PyTorch's Adam computes it.
void adam(const float* p, const float* g, const float* m, const float* v, size_t n, float lr, float b1, float b2, float eps, float c1, float c2,
          float decay, bool decoupled, float* p_out, float* m_out, float* v_out) {
  const float coupled = decoupled ? 0.0f : decay;
  const float direct = decoupled ? decay : 0.0f;
  const float inv_c1 = 1.0f / c1, inv_c2 = 1.0f / c2;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] + coupled * p[i];
    const float mi = m[i] * b1 + gi * (1.0f - b1);
    const float vi = v[i] * b2 + gi * gi * (1.0f - b2);
    const float update = (mi * inv_c1) / (std::sqrt(vi * inv_c2) + eps) + direct * p[i];
    m_out[i] = mi;
    v_out[i] = vi;
    p_out[i] = p[i] - update * lr;
  }
}

// SwiGLU: h = silu(gate) * up, and its backward.
void swiglu_forward(const float* gate, const float* up, size_t n, float* h) {
  for (size_t i = 0; i < n; i++) h[i] = gate[i] * fast_sigmoid(gate[i]) * up[i];
}

void swiglu_backward(const float* gate, const float* up, const float* dh, size_t n, float* dgate, float* dup) {
  for (size_t i = 0; i < n; i++) {
    const float s = fast_sigmoid(gate[i]);
    const float silu = gate[i] * s;
    dup[i] = dh[i] * silu;
    dgate[i] = dh[i] * up[i] * (s + silu * (1.0f - s));
  }
}

// Rotary embedding in the halves convention on x [outer, T, D] with tables cos, sin [T, D]:
// y1 = x1 c1 - x2 s1, y2 = x2 c2 + x1 s2. With backward set, the transposed map:
// dx1 = dy1 c1 + dy2 s2, dx2 = dy2 c2 - dy1 s1.
void rope(const float* x, const float* cos, const float* sin, size_t outer, size_t T, size_t D, bool backward, float* y) {
  const size_t half = D / 2;
  for (size_t o = 0; o < outer; o++) {
    for (size_t t = 0; t < T; t++) {
      const float* in = x + (o * T + t) * D;
      float* out = y + (o * T + t) * D;
      const float* c = cos + t * D;
      const float* s = sin + t * D;
      if (!backward) {
        for (size_t i = 0; i < half; i++) {
          out[i] = in[i] * c[i] - in[i + half] * s[i];
          out[i + half] = in[i + half] * c[i + half] + in[i] * s[i + half];
        }
      } else {
        for (size_t i = 0; i < half; i++) {
          out[i] = in[i] * c[i] + in[i + half] * s[i + half];
          out[i + half] = in[i + half] * c[i + half] - in[i] * s[i];
        }
      }
    }
  }
}

// Causal softmax of score rows in place: row i (query position offset + i) keeps columns
// 0..offset+i, the rest become 0. Scores arrive unscaled; `scale` multiplies them first.
// Returns each row's logsumexp (of the scaled scores) in lse.
void causal_softmax_rows(float* scores, size_t rows, size_t cols, size_t offset, float scale, float* lse) {
  for (size_t r = 0; r < rows; r++) {
    float* x = scores + r * cols;
    const size_t visible = std::min(cols, offset + r + 1);
    for (size_t c = 0; c < visible; c++) x[c] *= scale;
    const float m = row_max(x, visible);
    float sum = 0;
    for (size_t c = 0; c < visible; c++) {
      const float e = fast_exp(x[c] - m);
      x[c] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (size_t c = 0; c < visible; c++) x[c] *= inv;
    for (size_t c = visible; c < cols; c++) x[c] = 0.0f;
    lse[r] = m + std::log(sum);
  }
}

// Recomputes probabilities from unscaled scores and the saved logsumexp (backward pass).
void causal_probs_from_lse(float* scores, size_t rows, size_t cols, size_t offset, float scale, const float* lse) {
  for (size_t r = 0; r < rows; r++) {
    float* x = scores + r * cols;
    const size_t visible = std::min(cols, offset + r + 1);
    const float l = lse[r];
    for (size_t c = 0; c < visible; c++) x[c] = fast_exp(x[c] * scale - l);
    for (size_t c = visible; c < cols; c++) x[c] = 0.0f;
  }
}

// Softmax backward in place: dS = P * (dP - rowsum(dP * P)) * scale, with dP in `grad`.
void softmax_backward_rows(const float* probs, float* grad, size_t rows, size_t cols, float scale) {
  for (size_t r = 0; r < rows; r++) {
    const float* p = probs + r * cols;
    float* g = grad + r * cols;
    float dot = 0;
    for (size_t c = 0; c < cols; c++) dot += p[c] * g[c];
    for (size_t c = 0; c < cols; c++) g[c] = p[c] * (g[c] - dot) * scale;
  }
}


// ---------------------------------------------------------------- matrix-vector products

// y[n0:n1] += sum over eight rows r of x[r] * w[r, n0:n1] (rows ldw apart), in row order.
static inline void gemv_8rows(const float* x, const float* w, size_t ldw, size_t n0, size_t n1, float* __restrict y) {
  const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6], x7 = x[7];
  const float* __restrict w0 = w;
  const float* __restrict w1 = w0 + ldw;
  const float* __restrict w2 = w1 + ldw;
  const float* __restrict w3 = w2 + ldw;
  const float* __restrict w4 = w3 + ldw;
  const float* __restrict w5 = w4 + ldw;
  const float* __restrict w6 = w5 + ldw;
  const float* __restrict w7 = w6 + ldw;
  for (size_t n = n0; n < n1; n++) {
    float acc = y[n];
    acc += x0 * w0[n];
    acc += x1 * w1[n];
    acc += x2 * w2[n];
    acc += x3 * w3[n];
    acc += x4 * w4[n];
    acc += x5 * w5[n];
    acc += x6 * w6[n];
    acc += x7 * w7[n];
    y[n] = acc;
  }
}

// y[0:N] = sum over k < K of x[k] * w[k, 0:N] (w row-major, row stride ldw): the product of one
// row with a weight matrix stored [in, out]. At M = 1 a product only streams the weights once,
// so it is bound by memory bandwidth; eight rows of w per pass over y keep y's loads and
// stores (L1-resident) an eighth of the weight traffic. Each y[n] sums its terms in k order.
void gemv_rows(const float* x, const float* w, size_t K, size_t N, size_t ldw, float* __restrict y) {
  for (size_t n = 0; n < N; n++) y[n] = 0.0f;
  // JavaScript's large arrays start 16 bytes past a page boundary (malloc's header), so a vector
  // load at column 0 straddles two cache lines, which costs about a sixth of the bandwidth. The
  // columns before the first 64-byte boundary go first, on their own; with rows a multiple of
  // 64 bytes long, every row's remaining loads are then aligned.
  size_t peel = ldw % 16 == 0 ? ((64 - (reinterpret_cast<uintptr_t>(w) & 63)) & 63) / sizeof(float) : 0;
  peel = std::min(peel, N);
  size_t k = 0;
  for (; k + 8 <= K; k += 8) {
    gemv_8rows(x + k, w + k * ldw, ldw, 0, peel, y);
    gemv_8rows(x + k, w + k * ldw, ldw, peel, N, y);
  }
  for (; k < K; k++) {
    const float xk = x[k];
    const float* __restrict wk = w + k * ldw;
    for (size_t n = 0; n < N; n++) y[n] += xk * wk[n];
  }
}

// Dot product of two float vectors with sixteen partial sums, so it vectorises without
// -ffast-math reassociation; the result does not depend on how callers split their work.
static inline float dot16(const float* a, const float* b, size_t n) {
  float partial[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) partial[j] += a[i + j] * b[i + j];
  float sum = 0;
  for (int j = 0; j < 16; j++) sum += partial[j];
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

// y[n] = dot(w[n, 0:K], x) for n in [n0, n1): the product with a matrix stored [out, in] (a
// tied embedding used as the LM head).
void gemv_dot(const float* x, const float* w, size_t K, size_t n0, size_t n1, size_t ldw, float* y) {
  for (size_t n = n0; n < n1; n++) y[n] = dot16(w + n * ldw, x, K);
}

// One query row of attention over S cached positions: out = softmax(scale * q k) v, with the
// keys stored transposed (kt [hd, ldk], position s in column s) and the values as rows
// (v [S, hd]), so both products are matrix-vector products over contiguous rows. The
// probabilities are left in `scores` [S].
void attend_row(const float* q, const float* kt, size_t ldk, const float* v, size_t S, size_t hd, float scale, float* scores, float* __restrict out) {
  gemv_rows(q, kt, hd, S, ldk, scores);
  for (size_t s = 0; s < S; s++) scores[s] *= scale;
  const float m = row_max(scores, S);
  // The exponentials in a loop of their own and the sum in sixteen partial sums: a running
  // `sum += e` in the same loop would keep the whole loop, fast_exp included, scalar.
  for (size_t s = 0; s < S; s++) scores[s] = fast_exp(scores[s] - m);
  float partial[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t s = 0;
  for (; s + 16 <= S; s += 16)
    for (int j = 0; j < 16; j++) partial[j] += scores[s + j];
  float sum = 0;
  for (int j = 0; j < 16; j++) sum += partial[j];
  for (; s < S; s++) sum += scores[s];
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < S; i++) scores[i] *= inv;
  gemv_rows(scores, v, S, hd, hd, out);
}

}  // namespace DEEPEN_ISA
}  // namespace deepen
