// The kernels of kernels_impl.h compiled for AVX-512 (Skylake-X, Ice Lake, Zen 4 and later).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>

#include "dispatch.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi2")
#define DEEPEN_ISA avx512
#include "kernels_impl.h"

namespace deepen {
Isa isa_avx512() { return DEEPEN_ISA_TABLE(avx512); }
}  // namespace deepen
#else
namespace deepen {
// Not an x86 machine: the portable build serves.
Isa isa_avx512() { return isa_baseline(); }
}  // namespace deepen
#endif
