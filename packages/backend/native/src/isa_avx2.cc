// The kernels of kernels_impl.h compiled for AVX2 + FMA (Haswell, Zen and later).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>

#include "dispatch.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#define DEEPEN_ISA avx2
#include "kernels_impl.h"

namespace deepen {
Isa isa_avx2() { return DEEPEN_ISA_TABLE(avx2); }
}  // namespace deepen
#else
namespace deepen {
// Not an x86 machine: the portable build serves.
Isa isa_avx2() { return isa_baseline(); }
}  // namespace deepen
#endif
