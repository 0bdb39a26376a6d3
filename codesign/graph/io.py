"""(De)serialisation of the integer IR: one zip file holding graph.json and one .npy per parameter.

The file is deterministic (fixed member order and timestamps), so the same graph gives the same
bytes, and self-checking: graph.json records the SHA-256 of every array, and `load` validates
format, version, checksums and the contract before handing the graph on.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .ir import FORMAT, READ_VERSIONS, VERSION, Graph, IRError, Layer, TensorInfo, ir_version, validate

_EPOCH = (1980, 1, 1, 0, 0, 0)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _member(layer: str, param: str) -> str:
    # Layer names are free text; the archive member name is derived from the index-safe hash so a
    # hostile name can never escape the archive or collide.
    digest = hashlib.sha256(f"{layer}\0{param}".encode()).hexdigest()[:16]
    return f"arrays/{digest}.npy"


def to_json(graph: Graph) -> dict:
    return {
        "format": FORMAT,
        "version": ir_version(graph.tensors),
        "name": graph.name,
        "input": graph.input,
        "output": graph.output,  # the first output, for readers of single-output files
        "outputs": list(graph.outputs),
        "tensors": {k: v.to_json() for k, v in graph.tensors.items()},
        "layers": [
            {
                "name": layer.name,
                "op": layer.op,
                "inputs": list(layer.inputs),
                "output": layer.output,
                "attrs": layer.attrs,
                "params": {
                    p: {
                        "file": _member(layer.name, p),
                        "dtype": str(a.dtype),
                        "shape": list(a.shape),
                        "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                    }
                    for p, a in sorted(layer.params.items())
                },
            }
            for layer in graph.layers
        ],
        "meta": graph.meta,
    }


def save(graph: Graph, path: str | Path) -> Path:
    """Validate and write `graph` to `path`; returns the path."""
    validate(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = to_json(graph)
    members: list[tuple[str, bytes]] = [("graph.json", json.dumps(doc, indent=1, sort_keys=True).encode())]
    for layer in graph.layers:
        for p, a in sorted(layer.params.items()):
            members.append((_member(layer.name, p), _npy_bytes(a)))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return path


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise IRError(msg)


def load(path: str | Path) -> Graph:
    """Read, checksum and validate an IR file; raises IRError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: no such IR file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            _require("graph.json" in names, f"{path}: not a codesign IR file (no graph.json)")
            doc = json.loads(zf.read("graph.json"))
            graph = _from_json(path, doc, zf, names)
    except IRError:
        raise
    # A damaged deflate stream raises zlib.error, a damaged compression-method field NotImplementedError.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, NotImplementedError) as e:
        raise IRError(f"{path}: corrupt IR file ({e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IRError(f"{path}: corrupt graph.json ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise IRError(f"{path}: malformed IR ({type(e).__name__}: {e})") from None
    validate(graph)
    return graph


def _from_json(path: Path, doc: dict, zf: zipfile.ZipFile, names: set[str]) -> Graph:
    _require(isinstance(doc, dict) and doc.get("format") == FORMAT, f"{path}: not a codesign IR file")
    ver = doc.get("version")
    _require(ver in READ_VERSIONS, f"{path}: IR version {ver!r} is not supported (this codesign reads versions "
                                   f"{', '.join(map(str, READ_VERSIONS))}); re-export the model with `codesign export`")
    tensors = {}
    for k, v in doc["tensors"].items():
        # version 1 had no signed activations: a tensor without "signed" is unsigned
        signed = bool(v["signed"]) if ver >= 2 or "signed" in v else False
        tensors[k] = TensorInfo(tuple(int(d) for d in v["shape"]), v["bits"], signed, float(v["scale"]))
    layers = []
    for ld in doc["layers"]:
        params = {}
        for p, spec in ld["params"].items():
            member = spec["file"]
            _require(member in names, f"{path}: array for '{ld['name']}.{p}' is missing")
            arr = np.load(io.BytesIO(zf.read(member)), allow_pickle=False)
            _require(str(arr.dtype) == spec["dtype"] and list(arr.shape) == spec["shape"],
                     f"{path}: array '{ld['name']}.{p}' has dtype/shape {arr.dtype}{list(arr.shape)}, "
                     f"header says {spec['dtype']}{spec['shape']}")
            digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
            _require(digest == spec["sha256"], f"{path}: checksum mismatch in '{ld['name']}.{p}' (file corrupted)")
            params[p] = arr
        layers.append(Layer(ld["name"], ld["op"], list(ld["inputs"]), ld["output"], dict(ld["attrs"]), params))
    outputs = doc["outputs"] if "outputs" in doc else [doc["output"]]
    _require(isinstance(outputs, list) and all(isinstance(o, str) for o in outputs),
             f"{path}: 'outputs' must be a list of tensor names")
    return Graph(doc["name"], doc["input"], None, tensors, layers, dict(doc.get("meta", {})), outputs=list(outputs))
