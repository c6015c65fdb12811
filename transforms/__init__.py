"""The economics: parsers, attribution and quality suites, as pure functions of frames.

Importing this package sets how Polars's allocator returns memory, before Polars is loaded
(`pipelines` and `warehouse` import it first for that reason)."""

import os

# Polars allocates through jemalloc, built to give freed pages back to the system 0.5 s (dirty)
# and 1 s (muzzy) after they are freed. The nightly job frees and takes back gigabytes from one
# group of files, batch or stage to the next, and the kernel hands the same pages back and forth
# (page faults, zeroing, unmapping). Kept 5 s, the same code runs the 10 M benchmark night in
# 59.1-60.3 s (96 CPU-s, peak 2.8 GiB) instead of 61.5 s (99.5 CPU-s, peak 2.1 GiB); the 30 M night
# peaks at 3.5 GiB (bench/README.md). jemalloc reads this when Polars is first imported; an
# operator's own setting wins (lower values trade time for memory).
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000,muzzy_decay_ms:5000")
