"""The lake: the only code that knows where data lives.

Raw files and their readers (`lake.raw`, `lake.readers`, `lake.json_lines`), the Parquet lake's
partitions, marts, manifests and scratch files (`lake.store`), atomic writes (`lake.files`), the
inventory file (`lake.inventory`). `pipelines` and `warehouse` use it; it uses neither (it may
use `transforms`, whose parsers and contracts it applies to the files it reads).
"""

import transforms  # noqa: F401  (first: it sets Polars's allocator before Polars is loaded)
