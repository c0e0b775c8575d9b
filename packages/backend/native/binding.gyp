{
  # deepen's native CPU engine: the hot TensorFlow.js kernels in C++, matrix products through
  # OpenBLAS. Built at install time by native/build.mjs, which reports (and tolerates) a
  # missing compiler or BLAS; nothing here is needed for the other engines.
  "targets": [
    {
      "target_name": "deepen_native",
      "sources": [
        "src/addon.cc",
        "src/matmul.cc",
        "src/elementwise.cc",
        "src/reductions.cc",
        "src/fused.cc",
        "src/decode.cc",
        "src/gemv.cc",
        "src/layout.cc",
        "src/dispatch.cc",
        "src/pool.cc",
        "src/isa_avx512.cc",
        "src/isa_avx2.cc",
        "src/isa_baseline.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      # -O3 for auto-vectorisation. The kernels (src/kernels_impl.h) are compiled three times,
      # by isa_baseline.cc, isa_avx2.cc and isa_avx512.cc, the last two under their own
      # `#pragma GCC target`; dispatch.cc picks the widest table the CPU supports at load time,
      # so AVX2 / AVX-512 machines get wider code without a machine-specific build.
      # No -ffast-math: NaN and infinity must survive so the trainer can detect divergence.
      "cflags_cc": ["-O3", "-std=c++17", "-pthread", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"],
      "libraries": ["-lopenblas"]
    }
  ]
}
