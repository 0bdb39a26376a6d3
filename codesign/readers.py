"""Reading a file a user gave: any I/O, decode or parse error becomes one CodesignError line that names
the file and what is wrong (never a traceback, never a half-read value)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CodesignError


def read_text(path: str | Path, what: str = "file", error: type[CodesignError] = CodesignError) -> str:
    """The UTF-8 text of `path`."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not a text {what} (byte {e.start} is not UTF-8)") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None


def read_json(path: str | Path, what: str = "JSON file", error: type[CodesignError] = CodesignError) -> Any:
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_yaml(path: str | Path, what: str = "YAML file", error: type[CodesignError] = CodesignError) -> Any:
    import yaml

    text = read_text(path, what, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
