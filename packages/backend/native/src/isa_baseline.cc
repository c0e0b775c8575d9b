// The kernels of kernels_impl.h compiled for the x86-64 baseline (SSE2), or whatever the compiler targets elsewhere.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>

#include "dispatch.h"


#define DEEPEN_ISA baseline
#include "kernels_impl.h"

namespace deepen {
Isa isa_baseline() { return DEEPEN_ISA_TABLE(baseline); }
}  // namespace deepen
