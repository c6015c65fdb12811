"""The allow-list of finance statements (the second layer of `warehouse.access`), judged on DuckDB's
own tokens: queries, EXPLAIN of a query, read-only PRAGMAs and `CALL pragma_...()`, and COPY ...
TO one new file inside the export directory with plain options; everything else is refused
before any statement of the batch runs. It guards what the sandbox cannot: DuckDB may write the
files it may read (the published Parquet files), so no COPY may name them or choose how it writes.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

ST = duckdb.StatementType
TOKEN = duckdb.token_type
READ_ONLY_PRAGMAS = {"table_info", "show_tables", "show_tables_expanded", "database_size", "version", "platform",
                     "storage_info", "show", "database_list", "functions", "collations", "metadata_info"}
# Options of a COPY that writes one file. Not here, so refused: PARTITION_BY, FILENAME_PATTERN,
# PER_THREAD_OUTPUT, FILE_SIZE_BYTES (they write a directory of files), OVERWRITE,
# OVERWRITE_OR_IGNORE, APPEND (they delete or change what is there), USE_TMP_FILE (false
# writes in place, through a hard link), RETURN_FILES, and anything new.
COPY_OPTIONS = {"format", "header", "delimiter", "delim", "sep", "quote", "escape", "nullstr", "null", "force_quote",
                "dateformat", "date_format", "timestampformat", "timestamp_format", "compression", "compression_level",
                "row_group_size", "row_group_size_bytes", "parquet_version", "array", "new_line"}
WRITES = {
    ST.INSERT: "INSERT writes rows", ST.UPDATE: "UPDATE changes rows", ST.DELETE: "DELETE removes rows",
    ST.CREATE: "CREATE makes a table, view or other object", ST.DROP: "DROP removes an object",
    ST.ALTER: "ALTER changes an object", ST.ATTACH: "ATTACH opens (or creates) another database file",
    ST.DETACH: "DETACH changes the attached databases", ST.EXPORT: "EXPORT DATABASE writes files",
    ST.LOAD: "INSTALL/LOAD changes the extensions", ST.VACUUM: "VACUUM rewrites storage",
    ST.TRANSACTION: "transactions are not needed to read", ST.PREPARE: "PREPARE is not supported here",
    ST.EXECUTE: "EXECUTE is not supported here", ST.ANALYZE: "ANALYZE updates statistics",
    ST.EXTENSION: "extension statements change the extensions",
    ST.COPY_DATABASE: "COPY FROM DATABASE writes a database",
    ST.MERGE_INTO: "MERGE INTO changes rows", ST.CREATE_FUNC: "CREATE FUNCTION/MACRO makes an object",
}
SETTINGS_FIXED = ("settings are fixed in finance sessions: times are UTC (for local time write "
                  "`ts AT TIME ZONE 'Europe/Paris'`); memory and threads are the operator's "
                  "(INFERLEDGER_DUCKDB_MEMORY_LIMIT, INFERLEDGER_SQL_THREADS)")


class RefusedStatement(ValueError):
    """A statement the finance session does not run (it could write, or reach outside)."""


@dataclass
class _Token:
    start: int
    kind: "duckdb.token_type"
    text: str


def sql_tokens(sql: str) -> list[_Token]:
    """DuckDB's own tokens of `sql`, comments left out (so a comment cannot hide or fake a word)."""
    raw = duckdb.tokenize(sql)
    out = []
    for i, (start, kind) in enumerate(raw):
        if kind == TOKEN.comment:
            continue
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        out.append(_Token(start, kind, sql[start:end].strip()))
    return out


def statement_head(text: str) -> str:
    return " ".join(text.split()[:3])


def string_value(token: _Token) -> str | None:
    """The value of a plain `'...'` or `$tag$...$tag$` string token; None for other forms."""
    t = token.text
    if len(t) >= 2 and t[0] == "'" and t[-1] == "'":
        return t[1:-1].replace("''", "'")
    m = re.fullmatch(r"\$(\w*)\$(.*)\$\1\$", t, re.DOTALL)
    return m.group(2) if m else None


def export_root(export_dir: Path) -> Path:
    """The export directory as an absolute path; refused when it is itself a symbolic link."""
    d = Path(os.path.abspath(export_dir))
    if d.is_symlink():
        raise RefusedStatement(f"the export directory {d} is a symbolic link (to {os.readlink(d)}); "
                               "point --export-dir at a real directory")
    return d


def symlinks_under(export_dir: Path) -> list[Path]:
    """Symbolic links inside the export directory (DuckDB could follow them out of it)."""
    d = export_root(export_dir)
    found = []
    for root, dirs, files in os.walk(d):
        found += [Path(root) / n for n in dirs + files if (Path(root) / n).is_symlink()]
    return found


def check_export_dir(export_dir: Path) -> None:
    links = symlinks_under(export_dir)
    if links:
        raise RefusedStatement(f"the export directory holds symbolic links ({', '.join(map(str, links[:3]))}); "
                               "nothing runs while it does: remove them")


def copy_target(statement: "duckdb.Statement", export_dir: Path) -> Path:
    """The file a `COPY ... TO` writes, checked: one new (or single-link) file inside the export
    directory, with plain options. Raises RefusedStatement otherwise."""
    text = statement.query.strip()
    toks = sql_tokens(text)
    depth, to = 0, None
    for i, t in enumerate(toks[1:], start=1):
        if t.kind == TOKEN.operator and t.text == "(":
            depth += 1
        elif t.kind == TOKEN.operator and t.text == ")":
            depth -= 1
        elif depth == 0 and t.text.upper() == "FROM":
            raise RefusedStatement(f"refused `{statement_head(text)} ...`: COPY ... FROM loads rows into a table; "
                                   "the warehouse is read-only")
        elif depth == 0 and t.text.upper() == "TO":
            to = i
            break
    if to is None or to + 1 >= len(toks) or toks[to + 1].kind != TOKEN.string_const:
        raise RefusedStatement(f"refused `{statement_head(text)} ...`: a COPY here writes TO '<file>' inside "
                               f"{export_root(export_dir)}")
    target = string_value(toks[to + 1])
    if target is None:
        raise RefusedStatement(f"refused COPY TO {toks[to + 1].text}: write the file name as a plain '...' string")
    rest = toks[to + 2:]
    if rest and rest[-1].text == ";":
        rest = rest[:-1]
    if rest and rest[0].text.upper() == "WITH":
        rest = rest[1:]
    if rest and not (rest[0].text == "(" and rest[-1].text == ")"):
        raise RefusedStatement(f"refused COPY TO '{target}': after the file name only options in parentheses may "
                               f"follow, e.g. (FORMAT csv, HEADER); found `{rest[0].text}`")
    depth = 0
    for prev, t in zip(rest, rest[1:], strict=False):
        depth += {"(": 1, ")": -1}.get(prev.text, 0) if prev.kind == TOKEN.operator else 0
        if depth == 1 and prev.text in ("(", ",") and t.text.lower() not in COPY_OPTIONS:
            raise RefusedStatement(f"refused COPY TO '{target}': option {t.text} is not allowed here; a COPY writes "
                                   f"one file with these options: {', '.join(sorted(o.upper() for o in COPY_OPTIONS))}")
    root = export_root(export_dir)
    fix = f"write inside it (e.g. TO '{root / Path(target).name}') or use --out FILE"
    if "://" in target or target.startswith("~") or ".." in Path(target).parts:
        raise RefusedStatement(f"refused COPY TO '{target}': outside the export directory {root}; {fix}")
    path = Path(os.path.normpath(Path.cwd() / target))
    if path == root or not path.is_relative_to(root):
        raise RefusedStatement(f"refused COPY TO '{target}': outside the export directory {root}; {fix}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise RefusedStatement(f"refused COPY TO '{target}': {path} exists and is not a plain file; "
                               "write a new file name")
    if path.exists() and path.stat().st_nlink > 1:
        raise RefusedStatement(f"refused COPY TO '{target}': {path} is hard-linked to another file (a published "
                               "one, perhaps); write a new file name")
    return path


def _inner_of_explain(text: str) -> str:
    """The statement an EXPLAIN [ANALYZE] [(options)] explains."""
    toks = sql_tokens(text)[1:]
    if toks and toks[0].text.upper() in ("ANALYZE", "ANALYSE"):
        toks = toks[1:]
    if toks and toks[0].text == "(":
        depth = 0
        for i, t in enumerate(toks):
            depth += {"(": 1, ")": -1}.get(t.text, 0) if t.kind == TOKEN.operator else 0
            if depth == 0:
                toks = toks[i + 1:]
                break
    return text[toks[0].start:] if toks else ""


def check_statement(statement: "duckdb.Statement", export_dir: Path) -> None:
    """Raise RefusedStatement unless `statement` is on the finance allow-list."""
    text = statement.query.strip()
    head, t = statement_head(text), statement.type
    toks = sql_tokens(text)
    first = toks[0].text.upper() if toks else ""
    if t == ST.SELECT:
        return
    if t == ST.MULTI and first in ("PIVOT", "UNPIVOT", "PIVOT_WIDER", "PIVOT_LONGER", "WITH", "FROM"):
        return  # a PIVOT whose columns DuckDB reads first
    if t == ST.EXPLAIN:
        inner = split_statements(_inner_of_explain(text))
        if len(inner) == 1 and inner[0].type == ST.SELECT:
            return
        raise RefusedStatement(f"refused `{head} ...`: EXPLAIN here explains a query (SELECT, WITH, FROM); "
                               "EXPLAIN ANALYZE runs what it explains")
    if t == ST.PRAGMA:
        if first == "PRAGMA" and len(toks) > 1 and toks[1].text.lower() in READ_ONLY_PRAGMAS and \
                (len(toks) < 3 or toks[2].text in ("(", ";")):
            return
        raise RefusedStatement(f"refused `{head} ...`: only read-only PRAGMAs run here "
                               f"({', '.join(sorted(READ_ONLY_PRAGMAS))})")
    if t == ST.CALL:
        if first == "CALL" and len(toks) > 1 and toks[1].text.lower().startswith("pragma_"):
            return
        raise RefusedStatement(f"refused `{head} ...`: only CALL pragma_...() table functions run here")
    if t in (ST.SET, ST.VARIABLE_SET):
        raise RefusedStatement(f"refused `{head} ...`: {SETTINGS_FIXED}")
    if t == ST.COPY and first == "COPY":
        copy_target(statement, export_dir)
        return
    reason = WRITES.get(t, f"{t.name} statements are not read-only")
    raise RefusedStatement(f"refused `{head} ...`: {reason}; `inferledger sql` opens the warehouse read-only "
                           "(finance access). Build new tables in your own DuckDB file with ATTACH ... (READ_ONLY) "
                           "of this one.")


def split_statements(sql: str) -> list["duckdb.Statement"]:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise RefusedStatement(f"cannot parse the SQL: {one_line(e)}") from None


def one_line(e: BaseException) -> str:
    """A DuckDB error on one line: its message and hints, without the echoed query and caret."""
    lines = []
    for line in str(e).strip().splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return "; ".join(lines) or type(e).__name__
