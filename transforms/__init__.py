"""The economics: parsers, attribution and quality suites, as pure functions of frames.

Importing this package sets the environment Polars's allocator and Great Expectations read when
they load (`settings.LIBRARY_PRESETS`: jemalloc keeps freed memory 5 s, GX sends no analytics),
before either is imported; `lake`, `pipelines` and `warehouse` import it first for that reason.
It reads no setting: everything else comes in as arguments."""

from settings import preset_library_environment

# jemalloc reads its setting when Polars is first imported, GX its own when it loads: set
# (unless the operator did) before any module of this package imports either.
preset_library_environment()
