// The table of kernel implementations for one instruction set, and the choice of the widest
// one this CPU runs (see kernels_impl.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace deepen {

struct Isa {
  const char* name;
  void (*unary)(int op, const float* x, float* y, size_t n);
  void (*binary)(int op, const float* a, int sa, const float* b, int sb, float* y, size_t n);
  void (*compare)(int op, const float* a, int sa, const float* b, int sb, uint8_t* y, size_t n);
  void (*reduce)(int op, const float* x, float* y, size_t outer, size_t reduce, size_t inner);
  void (*softmax_rows)(const float* x, float* y, size_t rows, size_t cols, bool log);
  void (*cross_entropy_forward)(const float* logits, const int32_t* targets, size_t rows, size_t V, int32_t ignore, float* loss, float* lse);
  void (*cross_entropy_backward)(const float* logits, const int32_t* targets, const float* lse, const float* dy, size_t rows, size_t V, int32_t ignore,
                                 float* dx);
  void (*rms_norm_forward)(const float* x, const float* w, size_t rows, size_t H, float eps, float* y, float* rstd);
  void (*rms_norm_backward)(const float* x, const float* w, const float* rstd, const float* dy, size_t rows, size_t H, float* dx, float* dw);
  void (*adam)(const float* p, const float* g, const float* m, const float* v, size_t n, float lr, float b1, float b2, float eps, float c1, float c2,
               float decay, bool decoupled, float* p_out, float* m_out, float* v_out);
  void (*swiglu_forward)(const float* gate, const float* up, size_t n, float* h);
  void (*swiglu_backward)(const float* gate, const float* up, const float* dh, size_t n, float* dgate, float* dup);
  void (*rope)(const float* x, const float* cos, const float* sin, size_t outer, size_t T, size_t D, bool backward, float* y);
  void (*causal_softmax_rows)(float* scores, size_t rows, size_t cols, size_t offset, float scale, float* lse);
  void (*causal_probs_from_lse)(float* scores, size_t rows, size_t cols, size_t offset, float scale, const float* lse);
  void (*softmax_backward_rows)(const float* probs, float* grad, size_t rows, size_t cols, float scale);
  void (*gemv_rows)(const float* x, const float* w, size_t K, size_t N, size_t ldw, float* y);
  void (*gemv_dot)(const float* x, const float* w, size_t K, size_t n0, size_t n1, size_t ldw, float* y);
  void (*attend_row)(const float* q, const float* kt, size_t ldk, const float* v, size_t S, size_t hd, float scale, float* scores, float* out);
};

#define DEEPEN_ISA_TABLE(ns)                                                                                              \
  Isa {                                                                                                                   \
    #ns, &ns::unary, &ns::binary, &ns::compare, &ns::reduce, &ns::softmax_rows, &ns::cross_entropy_forward,               \
        &ns::cross_entropy_backward, &ns::rms_norm_forward, &ns::rms_norm_backward, &ns::adam, &ns::swiglu_forward,       \
        &ns::swiglu_backward, &ns::rope, &ns::causal_softmax_rows, &ns::causal_probs_from_lse, &ns::softmax_backward_rows, &ns::gemv_rows, \
        &ns::gemv_dot, &ns::attend_row                                                                                  \
  }

Isa isa_avx512();
Isa isa_avx2();
Isa isa_baseline();

// The implementation for this CPU, chosen once. DEEPEN_NATIVE_ISA=avx2|baseline forces a
// narrower one (for tests and comparisons).
const Isa& isa();

}  // namespace deepen
