{
  "targets": [
    {
      "target_name": "orchestrator_native",
      "sources": ["src/addon.c", "src/tree_stat.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
