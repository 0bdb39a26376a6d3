"""Run a deploy package: one engine start per frame, host layers in NumPy, results per model type.

    with Runtime("build/deploy", device="sim") as rt:     # device="pynq" on the board
        print(rt.infer(image))                            # uint8 H×W×C → top-k prediction

Set-up allocates every buffer once (descriptor table, weights, `batch` feature-map arenas) and
writes the table and the weights once. Per frame the host runs the layers scheduled before the
engine (CoDeNet's stem; none for DiracDeltaNet) and packs the engine's inputs (the image, or the
stem's outputs) into an arena (`hw.memory.initial_fmem`), points the fmem registers at it, starts
the engine, waits for ap_done, reads back only the buffers of the engine's outputs and finishes the
frame with the golden model's own host layers (`GoldenModel.evaluate`, as `hw.verify` does), so
every graph output (logits; heatmap, size, offset) is bit-exact with `codesign golden`. With 2+
arenas the next frame is packed while the engine runs. Any error while frames are in flight closes
the runtime: every buffer is freed.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CodesignError
from ..figures import CYCLE_COUNTED
from ..golden import GoldenModel
from ..hw import interface
from ..hw.memory import initial_fmem, read_tensor
from . import postprocess
from .device import Device, DeviceBuffer, DeviceError, PynqDevice, SimulatedDevice
from ..images import prepare
from .package import ENGINE_DIR, Package, load_package

DEVICES = ("sim", "pynq")


class RuntimeClosed(CodesignError):
    """The runtime was closed (explicitly, or by an error while frames were in flight)."""


def open_device(kind: str, package: Package) -> Device:
    """The backend `kind` for `package`'s engine."""
    hw = package.schedule.hw
    if kind == "sim":
        from .simulator import build_library  # host only: g++ and the ap_types headers

        library = build_library(package.root / ENGINE_DIR)
        return SimulatedDevice(library, package.registers, hw.bus_bits, package.desc_words)
    if kind == "pynq":
        check_overlay_timing(package)
        return PynqDevice(package.bitstream, package.registers, package.engine["vlnv"], hw.bus_bits,
                          tuple(package.engine["m_axi"]))
    raise CodesignError(f"unknown device {kind!r}: use one of {', '.join(DEVICES)}")


# The PS makes the PL clock by integer division, so the clock it gives can sit a hair under the one
# asked for; a design that meets that clock meets the engine's.
CLOCK_TOLERANCE = 1e-3


def check_overlay_timing(package: Package) -> None:
    """Before the overlay is loaded: refuse a bitstream whose routed design misses the clock the
    engine config was compiled for (hw.clock_mhz), unless it was built with
    --allow-timing-violation (then warn); warn when its timing was never checked."""
    overlay = package.meta.get("overlay")
    if not overlay:
        return  # nothing to load: PynqDevice says so
    timing, name = overlay.get("timing"), overlay["bit"]
    if timing is None:
        warnings.warn(f"{name}: its timing was not checked (no `codesign bitstream` reports in the package)",
                      stacklevel=3)
        return
    want = package.schedule.hw.clock_mhz
    problem = None
    if not timing["met"]:
        problem = f"its routed design misses timing (WNS {timing['wns_ns']:.3f} ns on {timing['clock']})"
    elif timing["fmax_mhz"] < want * (1 - CLOCK_TOLERANCE):
        problem = f"its routed design meets only {timing['fmax_mhz']:.1f} MHz"
    if problem is None:
        return
    message = f"{name}: {problem}, but the engine was compiled for {want:g} MHz"
    if not timing.get("allowed_violation"):
        raise DeviceError(f"{message}; results would be unreliable: rebuild the bitstream at a lower clock_mhz")
    warnings.warn(f"{message} (kept by --allow-timing-violation: results may be wrong)", stacklevel=3)


@dataclass
class FrameTiming:
    pack_s: float = 0.0  # image → fmem arena (host layers before the engine, packing, buffer write)
    engine_s: float = 0.0  # ap_start → ap_done seen
    readback_s: float = 0.0  # engine output buffer → integers
    host_s: float = 0.0  # host layers + postprocess (this frame's share of the batch)


class Runtime:
    def __init__(self, package_dir: str | Path, device: str | Device = "sim", timeout_s: float = 10.0,
                 batch: int = 1, resize: str = "refuse", top_k: int = 5):
        self._closed = True  # until set-up succeeds, close() has nothing to do
        self.package = load_package(package_dir)
        if not 1 <= batch <= self.package.max_batch:
            raise CodesignError(f"batch={batch}: this package allows 1..{self.package.max_batch} frames in flight "
                                "(rebuild it with a larger max_batch)")
        self.timeout_s, self.resize, self.top_k = timeout_s, resize, top_k
        self.timings: list[FrameTiming] = []  # of the last forward()
        self._golden = GoldenModel(self.package.graph)
        self._postprocess = postprocess.for_model(self.package.model_type)
        self.device = open_device(device, self.package) if isinstance(device, str) else device
        self._closed = False
        try:
            self._setup(batch)
        except BaseException:
            self.close()
            raise

    def _setup(self, batch: int) -> None:
        pkg, dev = self.package, self.device
        s = pkg.schedule
        word = s.hw.bus_bits // 8
        self._fmem_bytes = s.fmem_words * word
        desc = dev.allocate(pkg.table.nbytes, "desc")
        dev.write(desc, pkg.table.astype("<u4"))
        wmem = dev.allocate(s.wmem.size, "wmem")
        dev.write(wmem, s.wmem)
        self._arenas = [dev.allocate(self._fmem_bytes, f"fmem{i}") for i in range(batch)]
        for arena in self._arenas:  # board memory is not zeroed; C-sim and verify start from zeros
            dev.write(arena, np.zeros(self._fmem_bytes, dtype=np.uint8))
        self._write_args(desc=desc.address, n_desc=pkg.n_desc, wmem=wmem.address)

        def regions(tensors: list[str]) -> list[slice]:  # bytes of the buffers holding `tensors` in an arena
            bufs = dict.fromkeys(s.views[t].buffer for t in tensors)  # several views may share one buffer
            return [slice(s.buffers[b].addr * word, (s.buffers[b].addr + s.buffers[b].words(s.hw.bus_bits)) * word)
                    for b in bufs]

        self._in_regions, self._out_regions = regions(s.engine_inputs), regions(s.engine_outputs)

    def _write_args(self, **values: int) -> None:
        """Set every port that binds one of the host `values` (hw/interface.py), in signature order."""
        for name, value in interface.assign(**values).items():
            for offset, word in self.package.registers.words(name, value):
                self.device.write_register(offset, word)

    # ---- frames
    def forward(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The (first) graph output (N, H, W, C) integers of each image: logits for a classifier.
        A model with several outputs (a detector's heads): see `forward_outputs`."""
        return self.forward_outputs(images)[self._golden.graph.output]

    def forward_outputs(self, images: Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Every graph output, {tensor: (N, H, W, C) integers}, in the graph's output order."""
        if self._closed:
            raise RuntimeClosed("the runtime is closed; open a new one")
        frames = [prepare(img, self.package.input_shape, self.resize) for img in images]  # refuse before running
        graph = self._golden.graph
        if not frames:
            return {name: np.zeros((0, *graph.tensors[name].shape), dtype=np.int64) for name in graph.outputs}
        try:
            outputs, self.timings = self._run_engine(frames)
        except BaseException:
            self.close()  # the device state is unknown (timeout, fault, interrupt): free everything
            raise
        t0 = time.perf_counter()
        # the host layers after the engine, on the whole batch, with the golden model's own code
        # (what hw.verify.run_host_outputs does for one frame)
        result = self._golden.evaluate({name: np.stack([o[name] for o in outputs])
                                        for name in self.package.schedule.engine_outputs})
        share = (time.perf_counter() - t0) / len(frames)
        for t in self.timings:
            t.host_s = share
        return result

    def infer_batch(self, images: Sequence[np.ndarray] | np.ndarray) -> list[Any]:
        """One result per image: a `postprocess.Prediction` for classifiers; for a model with several
        outputs, what its registered postprocess makes of {output: (H, W, C)} (CoDeNet: detections)."""
        out = self.forward_outputs(images)
        names = self._golden.graph.outputs
        n = len(out[names[0]])
        frames = [out[names[0]][i] for i in range(n)] if len(names) == 1 else \
            [{name: out[name][i] for name in names} for i in range(n)]
        t0 = time.perf_counter()
        results = [self._postprocess(o, self.package, self.top_k) for o in frames]
        share = (time.perf_counter() - t0) / max(len(results), 1)
        for t in self.timings:
            t.host_s += share
        return results

    def infer(self, image: np.ndarray) -> Any:
        return self.infer_batch([image])[0]

    def _run_engine(self, frames: list[np.ndarray]) -> tuple[list[dict[str, np.ndarray]], list[FrameTiming]]:
        """Frame i runs in arena i mod batch; packing frame i overlaps the engine on frame i-1."""
        outputs: list[dict[str, np.ndarray]] = []
        timings: list[FrameTiming] = []
        running: tuple[DeviceBuffer, float, FrameTiming] | None = None
        for i, frame in enumerate(frames):
            arena = self._arenas[i % len(self._arenas)]
            if running and running[0] is arena:  # one arena: the engine must be done with it first
                outputs.append(self._finish(*running))
                running = None
            timing = FrameTiming()
            t0 = time.perf_counter()
            packed = initial_fmem(self.package.schedule, frame, self._golden)  # runs the host pre-layers
            for r in self._in_regions:
                self.device.write(arena, packed[r], offset=r.start)
            timing.pack_s = time.perf_counter() - t0
            if running:
                outputs.append(self._finish(*running))
            self._write_args(fmem=arena.address)
            running = (arena, time.perf_counter(), timing)
            self.device.start()
            timings.append(timing)
        outputs.append(self._finish(*running))
        return outputs, timings

    def _finish(self, arena: DeviceBuffer, started: float, timing: FrameTiming) -> dict[str, np.ndarray]:
        self.device.wait(self.timeout_s)
        t0 = time.perf_counter()
        timing.engine_s = t0 - started
        sched = self.package.schedule
        fmem = np.zeros(self._fmem_bytes, dtype=np.uint8)
        for r in self._out_regions:
            fmem[r] = self.device.read(arena, r.stop - r.start, offset=r.start)
        out = {name: read_tensor(sched, fmem, name) for name in sched.engine_outputs}
        timing.readback_s = time.perf_counter() - t0
        return out

    # ---- life cycle
    def close(self) -> None:
        """Free every device buffer (idempotent)."""
        self._closed = True
        if getattr(self, "device", None) is not None:
            self.device.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- entry points for the CLI (`codesign run`, `codesign benchmark`) -----------------------------

def run_images(package_dir: str | Path, image_paths: Sequence[str | Path], device: str = "sim",
               resize: str = "refuse", top_k: int = 5, batch: int = 1, timeout_s: float = 10.0) -> list[Any]:
    """One result per image file, in order (a `Prediction` for classifiers, `Detection` for CoDeNet;
    str() is one line)."""
    from ..images import load_image_file

    with Runtime(package_dir, device=device, timeout_s=timeout_s, batch=batch, resize=resize, top_k=top_k) as rt:
        channels = rt.package.input_shape[2]
        images = [load_image_file(p, channels) for p in image_paths]  # all readable before the first start
        return rt.infer_batch(images)


@dataclass
class Stats:
    mean_ms: float
    median_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Stats":
        ms = sorted(1000 * s for s in seconds)
        return cls(sum(ms) / len(ms), ms[len(ms) // 2], ms[0], ms[-1])


@dataclass
class BenchmarkReport:
    package: str
    device: str
    timing: str  # where the times come from: the board, or the C-simulation on the host
    frames: int
    batch: int
    wall_s: float
    fps: float
    stages: dict[str, Stats]  # per frame: pack, engine (one start = one engine call), readback, host
    # simulated device only: the engine's cycles per frame as the counting C-simulation gives them
    # (hls/cycles.py), and the engine-only frame rate they mean at the configured clock
    counted_cycles_per_frame: int = 0
    counted_fps: float = 0.0

    def format(self) -> str:
        lines = [f"{self.package} on {self.device}: {self.frames} frames, batch {self.batch}: "
                 f"{self.fps:.2f} frames/s ({self.wall_s:.3f} s)", f"timings: {self.timing}",
                 f"{'per frame':<10} {'mean ms':>9} {'median':>9} {'min':>9} {'max':>9}"]
        for name, st in self.stages.items():
            lines.append(f"{name:<10} {st.mean_ms:9.3f} {st.median_ms:9.3f} {st.min_ms:9.3f} {st.max_ms:9.3f}")
        if self.counted_cycles_per_frame:
            lines.append(f"engine on the FPGA: {self.counted_cycles_per_frame:,} cycles per frame = "
                         f"{self.counted_fps:.1f} FPS engine-only [{CYCLE_COUNTED}]")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "stages"},
                "stages": {k: vars(v) for k, v in self.stages.items()}}


def benchmark(package_dir: str | Path, device: str = "sim", frames: int = 32, batch: int = 1,
              timeout_s: float = 10.0, warmup: int = 1, seed: int = 0) -> BenchmarkReport:
    """Frames per second and per-stage times on random frames of the model's input size."""
    if frames < 1:
        raise CodesignError(f"frames={frames}: benchmark at least one frame")
    with Runtime(package_dir, device=device, timeout_s=timeout_s, batch=batch) as rt:
        rng = np.random.RandomState(seed)
        images = rng.randint(0, 256, (frames, *rt.package.input_shape)).astype(np.uint8)
        if warmup:
            rt.infer_batch(images[:min(warmup, frames)])
        timings: list[FrameTiming] = []
        t0 = time.perf_counter()
        for i in range(0, frames, batch):
            rt.infer_batch(images[i:i + batch])
            timings += rt.timings
        wall = time.perf_counter() - t0
        stages = {name: Stats.of([getattr(t, f"{name}_s") for t in timings])
                  for name in ("pack", "engine", "readback", "host")}
        report = BenchmarkReport(rt.package.name, rt.device.kind, rt.device.timing_note, frames, batch, wall,
                                 frames / wall, stages)
        counted = getattr(rt.device, "started_cycles", None)
        if counted:  # one start per frame, each running the same table
            report.counted_cycles_per_frame = counted[-1]
            report.counted_fps = rt.package.schedule.hw.clock_mhz * 1e6 / report.counted_cycles_per_frame
        return report
