"""The economics: parsers, attribution and quality suites, as pure functions of frames.

Importing this package sets how Polars's allocator returns memory, before Polars is loaded
(`pipelines` and `warehouse` import it first for that reason)."""

import os

# Polars allocates through jemalloc, built to give freed pages back to the system 0.5 s (dirty)
# and 1 s (muzzy) after they are freed. The nightly job frees and takes back gigabytes from one
# group of files, batch or stage to the next, so the kernel spent a fifth of the night's CPU
# handing the same pages back and forth (page faults, zeroing, unmapping). Kept 5 s, the 10 M
# benchmark night takes 57.4 s instead of 63-65 s (93 CPU-s instead of 105) at a peak of 2.8 GiB
# instead of 2.0 GiB (bench/README.md). jemalloc reads this when Polars is first imported; an
# operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:5000,muzzy_decay_ms:5000")
