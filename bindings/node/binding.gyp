{
  "targets": [
    {
      "target_name": "knit_addon",
      "sources": ["src/addon.c", "src/host.c", "src/serve.c", "src/chan.c"],
      "include_dirs": ["<!(node scripts/knit-paths.js include)"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
      "libraries": ["-L<!(node scripts/knit-paths.js lib)", "-lknit", "-lpthread"],
      "ldflags": ["-Wl,-rpath,'$$ORIGIN/../../native'"]
    }
  ]
}
