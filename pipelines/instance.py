"""The Dagster instance the commands record their runs in: $DAGSTER_HOME, made absolute and, when
missing, created with the project's instance settings.

Dagster reads `$DAGSTER_HOME/dagster.yaml`, and a relative `base_dir` in it is relative to the
current directory of the process that opens the instance: a run started from another directory
was recorded there, and `dg dev` showed nothing. So the project's settings are a template
(`dagster.yaml` at the top of the repository, shipped with the package as
`pipelines/dagster.yaml`, a link to it), and `ensure_home` writes `$DAGSTER_HOME/dagster.yaml`
from it with every `base_dir` absolute under $DAGSTER_HOME. An existing file is kept (an operator's,
deploy/dagster.yaml's), unless a storage path in it is
relative: that is refused, naming the path and the fix. Imports no Dagster (`inferledger sql`
loads this room's CLI without it).

    python -m pipelines.instance DIR      # what `make ui` runs before `dg dev`: prints the absolute DIR
"""

import json
import re
import sys
from pathlib import Path

from lake.files import write_text

TEMPLATE = Path(__file__).with_name("dagster.yaml")
CONFIG = "dagster.yaml"
# `base_dir: <path>` lines of an instance file (storage, artifacts, compute logs).
_BASE_DIR = re.compile(r"^(?P<indent>\s*)base_dir:\s*(?P<path>[^#\n]*?)\s*(?:#.*)?$", re.M)


class InstanceError(ValueError):
    """$DAGSTER_HOME cannot be used as it is; the message names the file and the fix."""


def _unquoted(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def instance_config(home: Path, template: str | None = None) -> str:
    """The template's text with each `base_dir` made absolute under `home` (an absolute home)."""
    text = TEMPLATE.read_text() if template is None else template

    def absolute(m: re.Match) -> str:
        path = Path(_unquoted(m["path"]))
        return f"{m['indent']}base_dir: {json.dumps(str(path if path.is_absolute() else (home / path).resolve()))}"
    header = (f"# Written by inferledger from its template (dagster.yaml) for DAGSTER_HOME={home}.\n"
              "# Storage paths are absolute: runs are recorded here whatever the working directory.\n")
    return header + _BASE_DIR.sub(absolute, text)


def relative_base_dirs(config_text: str) -> list[str]:
    """The `base_dir` values of an instance file that are relative paths (an env reference is not)."""
    values = [_unquoted(m["path"]) for m in _BASE_DIR.finditer(config_text)]
    return [v for v in values if v and not v.startswith("{") and not Path(v).is_absolute()]


def ensure_home(home: Path | str) -> Path:
    """`home` made absolute (against the current directory), created if missing, with its
    dagster.yaml written from the template when it has none. Raises InstanceError when its
    dagster.yaml names a relative storage path."""
    home = Path(home).expanduser().resolve()
    if home.exists() and not home.is_dir():
        raise InstanceError(f"DAGSTER_HOME={home} is a file: point DAGSTER_HOME at a directory (created if missing)")
    home.mkdir(parents=True, exist_ok=True)
    config = home / CONFIG
    if not config.exists():
        write_text(config, instance_config(home), fix="check DAGSTER_HOME is a directory you can write to")
        return home
    relative = relative_base_dirs(config.read_text())
    if relative:
        raise InstanceError(
            f"{config}: storage path(s) {', '.join(f'`{r}`' for r in relative)} are relative, so Dagster would record "
            "runs under whatever directory a command starts from; write them as absolute paths, or delete the file "
            "and inferledger writes one from the project's template (dagster.yaml)")
    return home


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m pipelines.instance DAGSTER_HOME")
    try:
        print(ensure_home(sys.argv[1]))
    except InstanceError as e:
        raise SystemExit(f"error: {e}") from None
