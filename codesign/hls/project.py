"""Write the complete HLS/Vivado project for one model and one hardware config.

Layout of the output directory (all deterministic: same inputs, same bytes):

    README.md        how to build it
    hw.yaml          the hardware config
    model.ir         the integer IR it was compiled from
    schedule.json    buffers, views, engine calls with their descriptors, host layers
    data/            desc.bin (descriptor table), wmem.bin (weights + requant in the engine's layout)
    src/             the engine: generated config.h, descriptor.h, codesign_engine.cpp + the template headers
    csim/            csim_api.cpp, the ctypes entry of the C-simulation
    tb/              testbench.cpp and vectors/ for one frame (input, expected memory, regions)
    vitis_hls.tcl    C-sim / synthesis / IP export;  vivado.tcl: block design → .bit + .hwh
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from ..golden import run as golden_run
from ..graph import Graph, save
from ..hw import descriptor, interface
from ..hw.config import HardwareConfig
from ..hw.memory import initial_fmem, read_call_output, write_call_output
from ..hw.plan import Schedule, hw_max_dilation
from ..hw.scheduler import schedule
from ..locations import HLS_TEMPLATES
from .names import safe_identifier
from .tcl import render_tcl

TEMPLATES = HLS_TEMPLATES


@dataclass
class Project:
    path: Path
    name: str
    schedule: Schedule
    graph: Graph
    image: np.ndarray  # the frame the testbench vectors were made from


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def test_image(graph: Graph) -> np.ndarray:
    """A deterministic frame for the testbench vectors, seeded by the model's identity."""
    seed = int.from_bytes(hashlib.sha256(graph.name.encode() + str(len(graph.layers)).encode()).digest()[:4], "little")
    return np.random.RandomState(seed).randint(0, 256, graph.tensors[graph.input].shape).astype(np.uint8)


def hw_context(hw: HardwareConfig) -> dict:
    return {**hw.to_dict(), "lanes": hw.lanes, "lanes_in8": hw.lanes_in8, "lanes_w": hw.lanes_w,
            "max_dilation": hw_max_dilation(hw), "axi_latency": hw.axi_latency_cycles}


def expected_fmem(sched: Schedule, graph: Graph, image: np.ndarray
                  ) -> tuple[np.ndarray, list[str], list[np.ndarray]]:
    """The memory a correct engine leaves after the whole table, the tensors still intact in it,
    and each call's expected output values.

    Built by replaying every call's golden output into its view, in call order; buffers reused in
    place keep only their last occupants, which are the tensors listed.
    """
    _, trace = golden_run(graph, image[None], trace=True)
    fmem = initial_fmem(sched, image, graph)
    per_call = []
    for call in sched.calls:
        source = call.output if call.output in trace else call.input  # a copy holds its input's values
        per_call.append(trace[source][0][..., call.out_slice])  # a split call's part: its channels
        write_call_output(sched, fmem, call, trace[source][0])
    intact: dict[str, bool] = {}  # a split tensor is intact when every part's channels are
    for c, v in zip(sched.calls, per_call):
        intact[c.output] = intact.get(c.output, True) and np.array_equal(read_call_output(sched, fmem, c), v)
    return fmem, [t for t, ok in intact.items() if ok], per_call


def _write_vectors(vec: Path, sched: Schedule, graph: Graph, image: np.ndarray) -> None:
    vec.mkdir(parents=True, exist_ok=True)
    sched.descriptor_table.astype("<u4").tofile(vec / "desc.bin")
    sched.wmem.tofile(vec / "wmem.bin")
    initial_fmem(sched, image, graph).tofile(vec / "fmem_in.bin")
    expected, intact, per_call = expected_fmem(sched, graph, image)
    expected.tofile(vec / "expected.bin")
    # the stored bits (a signed value two's complement in act_bits, as the testbench unpacks it)
    mask = (1 << sched.hw.act_bits) - 1
    np.concatenate([v.reshape(-1).astype(np.int64) & mask for v in per_call]).astype(np.uint8).tofile(
        vec / "expected_calls.bin")

    def region(label: str, v) -> str:
        # name, word address, H, W, Cbuf, rot, n, store bits [, channel stride when not 1]
        # (the testbench's region format)
        b = sched.buffers[v.buffer]
        stride = f" {v.stride}" if v.stride != 1 else ""
        return f"{safe_identifier(label)} {b.addr} {b.h} {b.w} {b.cbuf} {v.rot} {v.n} {b.store_bits}{stride}"

    (vec / "regions.txt").write_text("".join(region(t, sched.views[t]) + "\n" for t in intact))
    (vec / "calls.txt").write_text("".join(region(c.name, sched.output_view(c)) + "\n" for c in sched.calls))


SIGNED_IF = "#if CODESIGN_SIGNED_ACTS"


def resolve_signed(text: str, signed_acts: bool) -> str:
    """The engine header `text` for an engine with or without the signed-activation path: every
    `#if CODESIGN_SIGNED_ACTS` block (with its optional `#else`) is replaced by the branch the
    engine takes, as unifdef would. The signed path is compiled in only where the hardware config
    needs it (`signed_acts`), and an unsigned engine's sources are the headers as they were before
    the path existed, byte for byte. (Compiled as they are, the headers take the macro's value:
    undefined is 0, an unsigned engine; tests/cpp builds both.)"""
    out: list[str] = []
    stack: list[tuple[bool, int]] = []  # per open signed block: (in its #else branch, nesting depth inside)
    for line in text.splitlines(keepends=True):
        s = line.strip()
        if stack:
            in_else, depth = stack[-1]
            if s.startswith("#if"):  # #if, #ifdef, #ifndef: a nested conditional, kept as written
                stack[-1] = (in_else, depth + 1)
            elif s.startswith("#endif") and depth:
                stack[-1] = (in_else, depth - 1)
            elif s.startswith("#else") and not depth:
                stack[-1] = (True, 0)
                continue
            elif s.startswith("#endif"):
                stack.pop()
                continue
            if in_else != signed_acts:
                out.append(line)
            continue
        if s == SIGNED_IF:
            stack.append((False, 0))
            continue
        out.append(line)
    if stack:
        raise ValueError(f"unterminated {SIGNED_IF} block")
    return "".join(out)


def write_project(graph: Graph, hw: HardwareConfig, out_dir: str | Path, name: str | None = None,
                  keep_intermediate: bool = False) -> Project:
    """Schedule `graph` on `hw` and write every file of the project to `out_dir` (with
    keep_intermediate, also the scheduler's plan after each pass in out_dir/intermediate/)."""
    out = Path(out_dir)
    if keep_intermediate:
        shutil.rmtree(out / "intermediate", ignore_errors=True)
    sched = schedule(graph, hw, keep=out / "intermediate" if keep_intermediate else None)
    pname = safe_identifier(name or graph.name)
    if out.exists():
        for sub in ("src", "csim", "tb", "data"):
            shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("src", "csim", "tb", "data"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    env = _env()
    ctx = {"hw": hw_context(hw), "project": pname, **interface.template_context(),
           "fields": [(f.upper(), i) for i, f in enumerate(descriptor.FIELDS)],
           "flags": sorted((n, b) for n, b in descriptor.engine_flags(hw.signed_acts).items()),
           "desc_words": descriptor.WORDS}
    for template, target in (("engine/config.h.j2", "src/config.h"), ("engine/descriptor.h.j2", "src/descriptor.h"),
                             ("engine/codesign_engine.h.j2", "src/codesign_engine.h"),
                             ("engine/top.cpp.j2", "src/codesign_engine.cpp"),
                             ("engine/csim_api.cpp.j2", "csim/csim_api.cpp"),
                             ("engine/testbench.cpp.j2", "tb/testbench.cpp")):
        (out / target).write_text(env.get_template(template).render(**ctx))
    for header in sorted((TEMPLATES / "engine").glob("*.h")):
        (out / "src" / header.name).write_text(resolve_signed(header.read_text(), hw.signed_acts))
    image = test_image(graph)
    _write_vectors(out / "tb" / "vectors", sched, graph, image)
    sched.descriptor_table.astype("<u4").tofile(out / "data" / "desc.bin")
    sched.wmem.tofile(out / "data" / "wmem.bin")
    (out / "schedule.json").write_text(sched.dumps() + "\n")
    hw.save(out / "hw.yaml")
    save(graph, out / "model.ir")
    sources = ["src/codesign_engine.cpp"] + [f"src/{p.name}" for p in sorted((out / "src").glob("*.h"))]
    for fname, text in sorted(render_tcl(hw, pname, sources, ["tb/testbench.cpp"], ["src"], out).items()):
        (out / fname).write_text(text)
    (out / "README.md").write_text(env.get_template("project_README.md.j2").render(
        **ctx, calls=len(sched.calls), buffers=len(sched.buffers), fmem_words=sched.fmem_words,
        wmem_bytes=int(sched.wmem.size), host=sched.host_layers, board=hw.board))
    return Project(out, pname, sched, graph, image)
