"""`inferledger import-profile mlenergy|splitwise FILE [--out CSV]`: a public performance profile
in the canonical profile CSV (docs/raw-formats.md, "Performance profiles"), by default
`<raw>/profiles/<format>.csv`, where every day's ingest reads it."""

from pathlib import Path

from rich.markup import escape

from lake.profiles import ProfileImportError, read_profile_source, write_profile_csv
from pipelines.cli.output import console
from settings import Settings


def cmd_import_profile(args, settings: Settings) -> int:
    out = Path(args.out) if args.out else Path(settings.raw) / "profiles" / f"{args.format}.csv"
    try:
        rows = read_profile_source(args.format, Path(args.file))
    except ProfileImportError as e:
        console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    write_profile_csv(rows, out)
    pairs = rows.select("gpu_model", "model", "gpus_per_replica").unique().height
    console().print(f"{rows.height} operating points of {pairs} (GPU, model, GPUs per replica) written to "
                    f"[bold]{escape(str(out))}[/bold]")
    return 0
