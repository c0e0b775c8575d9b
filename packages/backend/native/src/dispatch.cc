#include "dispatch.h"

#include <cstdlib>
#include <cstring>

namespace deepen {

static Isa choose() {
  const char* forced = std::getenv("DEEPEN_NATIVE_ISA");
  if (forced && std::strcmp(forced, "baseline") == 0) return isa_baseline();
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && !(forced && std::strcmp(forced, "avx2") == 0)) return isa_avx512();
  if (avx2) return isa_avx2();
#endif
  return isa_baseline();
}

const Isa& isa() {
  static const Isa chosen = choose();
  return chosen;
}

}  // namespace deepen
