"""Reading a file a user gave: any I/O, decode or parse error becomes one CodesignError line that names
the file and what is wrong (never a traceback, never a half-read value)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .errors import CodesignError


def read_bytes(path: str | Path, what: str = "file", error: type[CodesignError] = CodesignError) -> bytes:
    """The bytes of `path`."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__})") from None


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
    return _parsed(path, what, error, "JSON", json.loads, json.JSONDecodeError)


def read_yaml(path: str | Path, what: str = "YAML file", error: type[CodesignError] = CodesignError) -> Any:
    import yaml

    # libyaml's safe loader where PyYAML was built with it: the same documents, several times faster
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return _parsed(path, what, error, "YAML", lambda text: yaml.load(text, Loader=loader), yaml.YAMLError)


def _parsed(path: str | Path, what: str, error: type[CodesignError], fmt: str, loads: Callable[[str], Any],
            failure: type[Exception]) -> Any:
    """loads(the file's text); its parse error becomes `error` naming the file."""
    text = read_text(path, what, error)
    try:
        return loads(text)
    except failure as e:
        raise error(f"{path}: not valid {fmt} ({str(e).splitlines()[0]})") from None


class _Declaration(Exception):
    pass


def _refuse_declaration(*_args) -> None:
    raise _Declaration


def read_xml(path: str | Path, what: str = "XML file", error: type[CodesignError] = CodesignError):
    """The root element of `path`. A DOCTYPE or ENTITY declaration is refused before anything is built:
    expat reads the file once with handlers that stop at the first one, in whatever encoding it
    declares, so no entity is ever expanded (billion laughs) or fetched (XXE)."""
    import xml.etree.ElementTree as ET
    from xml.parsers import expat

    data = read_bytes(path, what, error)
    scan = expat.ParserCreate()
    scan.StartDoctypeDeclHandler = scan.EntityDeclHandler = _refuse_declaration
    try:
        scan.Parse(data, True)
        return ET.fromstring(data)
    except _Declaration:
        raise error(f"{path}: has a DOCTYPE or ENTITY declaration; refused (entities are never expanded)") from None
    except (expat.ExpatError, ET.ParseError) as e:
        raise error(f"{path}: not well-formed XML ({e})") from None


def read_onnx(path: str | Path, what: str = "ONNX model", error: type[CodesignError] = CodesignError) -> Any:
    """The parsed `onnx.ModelProto` of `path`: an empty, truncated or non-ONNX file is one line."""
    import onnx
    from google.protobuf.message import DecodeError

    data = read_bytes(path, what, error)
    if not data:
        raise error(f"{path}: the {what} is empty (0 bytes)")
    try:
        # protobuf accepts many byte strings (it skips unknown fields), so a parse is not proof
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise error(f"{path}: not an ONNX model (protobuf: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                    "a truncated or damaged file?)") from None
    if not model.HasField("graph") or not model.graph.node or model.ir_version <= 0:
        raise error(f"{path}: not an ONNX model (no graph, no nodes or no IR version; a truncated or "
                    "damaged file?)")
    return model
