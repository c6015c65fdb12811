"""Finance access: the published warehouse in a DuckDB sandbox, and statements that cannot write.

Two layers (docs/warehouse.md, "Finance access"):

1. The sandbox (`open_finance`, `warehouse.access.sandbox`), DuckDB's own controls: the file
   opened `read_only`; external access off, with only the export directory
   (`allowed_directories`), the version's `request_costs` Parquet files (`allowed_paths`, read
   through a temporary view over exactly those files) and a private spill directory reachable;
   extensions neither installed nor loaded; Python replacement scans off; the memory limit and
   threads fixed by the operator; then `lock_configuration`, so no statement can undo any of it.
2. The allow-list (`check_statement`, `warehouse.access.allow_list`), on DuckDB's own tokens:
   queries, EXPLAIN of a query, read-only PRAGMAs and `CALL pragma_...()`, and COPY ... TO one
   new file inside the export directory with plain options; everything else is refused before
   any statement of the batch runs. It guards what the sandbox cannot: DuckDB may write the
   files it may read (the published Parquet files), so no COPY may name them or choose how it
   writes.

Every statement runs in a worker thread under a timeout; Ctrl-C interrupts it (`run_statement`,
`warehouse.access.statements`). A result is exported with `export` (`warehouse.access.exports`).
Internal readers (the report, check-data, the demo's printout) use `open_warehouse`: read-only,
no sandbox, no timeout.
"""

from warehouse.access.allow_list import RefusedStatement, check_statement, copy_target, one_line, split_statements
from warehouse.access.exports import RefusedOutput, check_out, export
from warehouse.access.sandbox import FinanceSession, WarehouseFileError, open_finance, open_warehouse, table_catalog
from warehouse.access.statements import (DEFAULT_TIMEOUT_S, INTERRUPT_GRACE_S, Result, StatementInterrupted,
                                         StatementStuck, execute, run_statement)

__all__ = ["DEFAULT_TIMEOUT_S", "INTERRUPT_GRACE_S", "FinanceSession", "RefusedOutput", "RefusedStatement", "Result",
           "StatementInterrupted", "StatementStuck", "WarehouseFileError", "check_out", "check_statement",
           "copy_target", "execute", "export", "one_line", "open_finance", "open_warehouse", "run_statement",
           "split_statements", "table_catalog"]
