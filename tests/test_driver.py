"""The PYNQ runtime: deploy package, register map, device backends, end to end on the simulated device."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import jinja2
import numpy as np
import pytest

from codesign.deploy import build_deploy_package
from codesign.hls.manifest import write_overlay_stamp
from codesign.driver import postprocess
from codesign.driver.device import DeviceError, DeviceUnavailable, EngineTimeout, SimulatedDevice
from codesign.images import ImageError
from codesign.driver.package import (DESC, ENGINE, ENGINE_DIR, SCHEDULE, WMEM, PackageError, load_package,
                                     write_manifest)
from codesign.driver.registers import RegisterMapError
from codesign.driver.runtime import Runtime, RuntimeClosed, benchmark, run_images
from codesign.errors import CodesignError
from codesign.golden import run as golden_run
from codesign.hls.csim import build_library
from codesign.hls.project import write_project
from codesign.hw import descriptor, interface
from codesign.hw.limits import sized_for
from codesign.locations import HLS_TEMPLATES

from .conftest import random_images

REPO = Path(__file__).resolve().parents[1]
RES = 32  # conftest.TINY resolution
# What Vitis HLS writes for codesign_engine's control bundle (xcodesign_engine_hw.h / the .hwh):
# 64-bit pointers take two data words and a reserved word, the 32-bit n_desc one and a reserved.
VITIS_OFFSETS = {"desc": 0x10, "n_desc": 0x1C, "wmem": 0x24, "fmem_rd": 0x30, "fmem_old": 0x3C, "fmem_wr": 0x48}


@pytest.fixture(scope="module")
def graph(tiny_graph):
    return tiny_graph


@pytest.fixture(scope="module")
def project(graph, tmp_path_factory):
    return write_project(graph, sized_for(graph), tmp_path_factory.mktemp("drv") / "tiny")


@pytest.fixture(scope="module")
def package(project, tmp_path_factory):
    return build_deploy_package(project.path, tmp_path_factory.mktemp("drv") / "pkg")


@pytest.fixture()
def images():
    return random_images(5, RES, seed=3)


def _copy(package: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(package, tmp_path / "copy"))


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg and isinstance(err.value, CodesignError), msg
    return msg


# ---- end to end on the simulated device ----------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
def test_simulated_device_is_bit_exact_with_the_golden_model(package, graph, images, batch):
    golden = golden_run(graph, images)
    with Runtime(package, device="sim", batch=batch) as rt:
        assert len(rt.device.live_buffers) == 2 + batch  # desc, wmem, one fmem arena per frame in flight
        np.testing.assert_array_equal(rt.forward(images), golden)  # logits equal, frame after frame
        preds = rt.infer_batch(images)
        assert [p.class_id for p in preds] == list(golden.reshape(len(images), -1).argmax(axis=1))
        assert len(rt.timings) == len(images) and all(t.engine_s > 0 for t in rt.timings)
    assert rt.closed and rt.device.live_buffers == []


def test_split_schedule_deploys_and_runs_on_the_simulated_device(graph, tmp_path):
    """A weight buffer too shallow for the 128 → 256 head (32 tiles): its two parts go through deploy's
    package (schedule.json) and the driver, bit-exact with golden."""
    project = write_project(graph, sized_for(graph).with_(max_wtiles=16), tmp_path / "split")
    assert [c.channels for c in project.schedule.calls if c.conv == "head"] == [(0, 128), (128, 256)]
    pkg = build_deploy_package(project.path, tmp_path / "pkg")
    imgs = random_images(2, RES, seed=9)
    with Runtime(pkg, device="sim") as rt:
        assert [c.channels for c in rt.package.schedule.calls if c.conv == "head"] == [(0, 128), (128, 256)]
        np.testing.assert_array_equal(rt.forward(imgs), golden_run(graph, imgs))


def test_run_images_and_benchmark(package, graph, tmp_path):
    from PIL import Image

    imgs = random_images(2, RES, seed=5)
    paths = []
    for i, img in enumerate(imgs):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    preds = run_images(package, paths, device="sim", top_k=3)
    golden = golden_run(graph, imgs)
    assert [list(p.logits) for p in preds] == [list(g.reshape(-1)) for g in golden]
    assert all(len(p.top) == 3 for p in preds)

    report = benchmark(package, device="sim", frames=4, batch=2)
    assert report.frames == 4 and report.fps > 0 and set(report.stages) == {"pack", "engine", "readback", "host"}
    assert report.timing == "simulated (C-simulation on the host CPU; not board timings)"
    assert "simulated" in report.format() and json.dumps(report.to_json())


def test_wrong_image_size_is_refused_or_resized_on_request(package, graph):
    img = random_images(1, RES, seed=7)[0]
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)  # 64×64; both resamplers give `img` back exactly
    golden = golden_run(graph, img[None])[0]
    with Runtime(package, device="sim") as rt:
        with pytest.raises(ImageError) as err:
            rt.infer(big)
        msg = _one_line(err)
        assert "64×64" in msg and "32×32" in msg and "resize" in msg
        with pytest.raises(ImageError, match="channels"):
            rt.infer(img[..., :2])
        with pytest.raises(ImageError, match="uint8"):
            rt.infer(img.astype(np.float32) / 255)
        assert not rt.closed  # a refused image touches nothing
        for mode in ("nearest", "bilinear"):
            rt.resize = mode
            np.testing.assert_array_equal(rt.forward([big])[0], golden)


def test_postprocess_is_chosen_by_model_type(project, tmp_path, monkeypatch):
    pkg = build_deploy_package(project.path, tmp_path / "pkg", model_type="boxes", class_names=list("abcdefghij"))
    seen = []
    monkeypatch.setitem(postprocess._REGISTRY, "boxes", lambda out, package, top_k: seen.append(out.shape) or "ok")
    with Runtime(pkg, device="sim") as rt:
        assert rt.infer(random_images(1, RES)[0]) == "ok" and seen == [(1, 1, 10)]
    monkeypatch.delitem(postprocess._REGISTRY, "boxes")
    with Runtime(pkg, device="sim") as rt:  # unregistered: classification, with the class names
        assert rt.infer(random_images(1, RES)[0]).label in list("abcdefghij")


# ---- faults: every error path frees every buffer -------------------------------------------------

def test_hang_raises_engine_timeout_and_frees_every_buffer(package, images):
    rt = Runtime(package, device="sim", timeout_s=0.2, batch=2)
    rt.device.hang = True  # fault knob: ap_start accepted, ap_done never comes
    with pytest.raises(EngineTimeout) as err:
        rt.infer_batch(images)
    assert "0.2 s" in _one_line(err) and "the engine was reset and is idle" in _one_line(err)
    assert rt.closed and rt.device.live_buffers == [] and rt.device.resets == 1
    with pytest.raises(RuntimeClosed):
        rt.infer(images[0])


def test_hung_engine_is_reset_before_any_buffer_is_freed(package, images):
    events = []

    class Logging(SimulatedDevice):
        def reset_engine(self):
            events.append("reset")
            super().reset_engine()

        def _free(self, buf):
            events.append("free")
            super()._free(buf)

    pkg = load_package(package)
    dev = Logging(build_library(package / ENGINE_DIR), pkg.registers, pkg.schedule.hw.bus_bits, pkg.desc_words,
                  hang=True)
    with pytest.raises(EngineTimeout):
        Runtime(package, device=dev, timeout_s=0.1).infer(images[0])
    assert events[0] == "reset" and events[1:] == ["free"] * 3  # desc, wmem, one arena


def test_engine_that_stays_busy_keeps_its_buffers(package, images):
    rt = Runtime(package, device="sim", timeout_s=0.1)
    rt.device.hang, rt.device.reset_works = True, False
    with pytest.warns(UserWarning, match="reboot the board"), pytest.raises(EngineTimeout) as err:
        rt.infer(images[0])
    assert "still busy after its reset" in _one_line(err) and "3 buffers stay allocated" in _one_line(err)
    assert rt.closed and len(rt.device.live_buffers) == 3  # never freed under a master that may still write


def test_failure_during_setup_frees_what_was_allocated(package):
    class FailingDevice(SimulatedDevice):
        def _allocate(self, nbytes, name):
            if name == "fmem1":
                raise DeviceError("out of device memory")
            return super()._allocate(nbytes, name)

    pkg = load_package(package)
    dev = FailingDevice(build_library(package / ENGINE_DIR), pkg.registers, pkg.schedule.hw.bus_bits, pkg.desc_words)
    with pytest.raises(DeviceError, match="out of device memory"):
        Runtime(package, device=dev, batch=2)
    assert dev.live_buffers == []


def test_truncated_wmem_is_refused(package, tmp_path):
    pkg = _copy(package, tmp_path)
    data = (pkg / WMEM).read_bytes()
    (pkg / WMEM).write_bytes(data[:len(data) // 2])
    with pytest.raises(PackageError) as err:
        Runtime(pkg, device="sim")
    assert "wmem.bin" in _one_line(err) and "truncated" in str(err.value)


def test_modified_file_fails_its_checksum(package, tmp_path):
    pkg = _copy(package, tmp_path)
    data = bytearray((pkg / WMEM).read_bytes())
    data[100] ^= 0x10
    (pkg / WMEM).write_bytes(bytes(data))
    with pytest.raises(PackageError) as err:
        Runtime(pkg, device="sim")
    assert "wmem.bin" in _one_line(err) and "checksum" in str(err.value)


def test_missing_schedule_is_refused(package, tmp_path):
    pkg = _copy(package, tmp_path)
    (pkg / SCHEDULE).unlink()
    with pytest.raises(PackageError) as err:
        Runtime(pkg, device="sim")
    assert "schedule.json is missing" in _one_line(err)
    with pytest.raises(PackageError, match="not a codesign deploy package"):
        Runtime(tmp_path, device="sim")


def test_schedule_for_other_engine_parameters_is_refused(package, graph, tmp_path):
    """A package whose schedule was compiled for another engine than the one it ships (e.g. a
    recompiled project next to a stale bitstream) is refused even with consistent checksums."""
    base = sized_for(graph)
    hw = base.with_(pi=base.pi * 2, po=base.po // 2)
    other = write_project(graph, hw, tmp_path / "other").path
    pkg = _copy(package, tmp_path)
    for rel in (SCHEDULE, "hw.yaml", DESC, WMEM):
        shutil.copyfile(other / rel, pkg / rel)
    write_manifest(pkg)
    with pytest.raises(PackageError) as err:
        Runtime(pkg, device="sim")
    msg = _one_line(err)
    assert "other engine parameters" in msg and f"pi={hw.pi} vs {base.pi}" in msg and f"po={hw.po} vs {base.po}" in msg


def test_stale_bitstream_is_refused_at_deploy(project, tmp_path):
    proj = Path(shutil.copytree(project.path, tmp_path / "proj"))
    bit = proj / "overlay" / "tiny.bit"
    bit.parent.mkdir()
    bit.write_bytes(b"bitstream")
    bit.with_suffix(".hwh").write_text("<ROOT/>")
    write_overlay_stamp(proj, bit)
    meta = json.loads((build_deploy_package(proj, tmp_path / "ok") / "package.json").read_text())
    assert meta["overlay"] == {"bit": "overlay/tiny.bit", "hwh": "overlay/tiny.hwh", "stamped": True, "timing": None}
    (proj / "src" / "config.h").write_text((proj / "src" / "config.h").read_text() + "// recompiled\n")
    with pytest.raises(CodesignError, match="other engine sources"):
        build_deploy_package(proj, tmp_path / "stale")


# ---- the package itself --------------------------------------------------------------------------

def test_package_is_deterministic_and_self_contained(project, package, tmp_path):
    again = build_deploy_package(project.path, tmp_path / "again")
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (package / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert "No bitstream" in (package / "README.md").read_text()
    assert json.loads((package / "package.json").read_text())["overlay"] is None

    nb = json.loads((package / "example.ipynb").read_text())
    assert nb["nbformat"] == 4 and nb["cells"] and nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            compile("".join(cell["source"]), "cell", "exec")
    if importlib.util.find_spec("nbformat"):
        import nbformat

        nbformat.validate(nbformat.reads((package / "example.ipynb").read_text(), as_version=4))

    # The package's own runtime copy runs on its own: no torch, no jinja2, no pynq; run.py works.
    code = ("import sys; sys.path.insert(0, '.'); import codesign, codesign.driver.runtime; "
            "assert codesign.__file__.startswith(sys.argv[1]), codesign.__file__; "
            "bad = [m for m in ('torch', 'jinja2', 'pynq', 'brevitas') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(package)], cwd=package, check=True)
    out = subprocess.run([sys.executable, "run.py", "--device", "sim", "--benchmark", "2"], cwd=package,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "frames/s" in out.stdout, out.stderr


# ---- register map and descriptor layout follow the generated engine ------------------------------

def _signature(source: str) -> list[str]:
    """The argument names of the top function in a rendered source, in order."""
    args = re.search(r"void codesign_engine\(([^)]*)\)", source).group(1)
    return [re.search(r"(\w+)\s*$", a).group(1) for a in args.split(",")]


def test_register_offsets_follow_the_one_interface_definition(project):
    """hw/interface.py's map is where Vitis puts the registers of the top function it renders: the
    signature lists its ports in order, each with an s_axilite register in the control bundle."""
    assert {r.name: r.offset for r in interface.REGISTERS} == VITIS_OFFSETS
    names = [p.name for p in interface.PORTS]
    for source in ("src/codesign_engine.cpp", "src/codesign_engine.h"):
        assert _signature((project.path / source).read_text()) == names
    top = (project.path / "src" / "codesign_engine.cpp").read_text()
    assert re.findall(r"s_axilite port = (\w+) bundle = control", top) == names + ["return"]
    assert re.findall(r"m_axi port = (\w+) bundle = (\w+)", top) == [(p.name, p.bundle) for p in interface.PORTS
                                                                       if p.kind == "m_axi"]

    # A port added to the definition reaches the signature, the pragmas and every later register: a
    # 32-bit scalar after n_desc moves them by 8 bytes, a 64-bit one by 12, as Vitis allocates them.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HLS_TEMPLATES)), undefined=jinja2.StrictUndefined)
    for bits, shift in ((32, 8), (64, 12)):
        ports = (*interface.PORTS[:2], interface.Port("scale", "scalar", f"ap_uint<{bits}>", "scale", bits=bits),
                 *interface.PORTS[2:])
        top = env.get_template("engine/top.cpp.j2").render(hw={}, **interface.template_context(ports))
        assert _signature(top) == names[:2] + ["scale"] + names[2:]
        assert f"ap_uint<{bits}> scale," in top and "s_axilite port = scale bundle = control" in top
        want = {n: o + (shift if o > VITIS_OFFSETS["n_desc"] else 0) for n, o in VITIS_OFFSETS.items()}
        assert {r.name: r.offset for r in interface.allocate(ports) if r.name != "scale"} == want


def test_the_driver_binds_host_values_to_ports():
    """The runtime sets host values (hw/interface.py `binds`), never port names: the three fmem ports
    take one arena, and the simulated device refuses registers where they disagree."""
    assert interface.assign(fmem=0x1000) == {"fmem_rd": 0x1000, "fmem_old": 0x1000, "fmem_wr": 0x1000}
    assert list(interface.assign(desc=1, n_desc=2, wmem=3)) == ["desc", "n_desc", "wmem"]
    with pytest.raises(KeyError, match="fmem_rd"):
        interface.assign(fmem_rd=0)
    regs = {"desc": 1, "n_desc": 2, "wmem": 3, "fmem_rd": 4, "fmem_old": 4, "fmem_wr": 4}
    assert interface.host_values(regs) == {"desc": 1, "n_desc": 2, "wmem": 3, "fmem": 4}
    with pytest.raises(ValueError, match="fmem_rd, fmem_old and fmem_wr must point at the same buffer"):
        interface.host_values(dict(regs, fmem_old=5))
    # the widths the .hwh records: the descriptor port moves 32-bit words, the others bus words
    assert interface.m_axi_bits(128) == {"desc": 32, "wmem": 128, "fmem_rd": 128, "fmem_old": 128, "fmem_wr": 128}


def _reorder_descriptor(monkeypatch: pytest.MonkeyPatch, fields: tuple[str, ...]) -> None:
    """Make `fields` the descriptor layout, as an edit of codesign/hw/descriptor.py would.
    (encode/decode bind FIELDS as a default argument, so that is patched too.)"""
    monkeypatch.setattr(descriptor, "FIELDS", fields)
    monkeypatch.setattr(descriptor, "WORDS", len(fields))
    for fn in (descriptor.encode, descriptor.decode):
        monkeypatch.setattr(fn, "__defaults__", (fields,))


def test_reordered_descriptor_fields_need_no_driver_edit(graph, package, images, tmp_path, monkeypatch):
    fields = ("window", "cout", "cin") + tuple(f for f in descriptor.FIELDS if f not in ("window", "cout", "cin"))
    with monkeypatch.context() as m:
        _reorder_descriptor(m, fields)
        proj = write_project(graph, sized_for(graph), tmp_path / "reordered").path
        pkg = build_deploy_package(proj, tmp_path / "pkg")
    # the rendered header, the package's engine.json and the descriptors all follow the one definition
    header = dict(re.findall(r"constexpr int DESC_(\w+) = (\d+);", (proj / "src" / "descriptor.h").read_text()))
    assert [n.lower() for n, i in sorted(header.items(), key=lambda kv: int(kv[1])) if n != "WORDS"] == list(fields)
    # back to the original layout in this process: the driver takes the layout from the package
    assert json.loads((pkg / ENGINE).read_text())["descriptor"]["fields"] == list(fields)
    assert (pkg / DESC).read_bytes() != (package / DESC).read_bytes()
    with Runtime(pkg, device="sim") as rt:
        np.testing.assert_array_equal(rt.forward(images), golden_run(graph, images))


def test_descriptor_layout_mismatch_is_refused(package, tmp_path):
    pkg = _copy(package, tmp_path)
    engine = json.loads((pkg / ENGINE).read_text())
    engine["descriptor"]["fields"] = engine["descriptor"]["fields"][::-1]
    (pkg / ENGINE).write_text(json.dumps(engine))
    write_manifest(pkg)
    with pytest.raises(PackageError, match="descriptor layout"):
        Runtime(pkg, device="sim")


# ---- PYNQ backend --------------------------------------------------------------------------------

def test_runtime_imports_without_pynq():
    code = 'import codesign.driver.runtime, sys; assert "pynq" not in sys.modules'
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_pynq_device_without_pynq_fails_in_one_line(package, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)  # `import pynq` raises ImportError, installed or not
    with pytest.raises(DeviceUnavailable) as err:
        Runtime(package, device="pynq")
    msg = _one_line(err)
    assert "pynq" in msg and "not installed" in msg and "'sim'" in msg


def test_pynq_installed_without_board_fails_in_one_line(package):
    pynq = pytest.importorskip("pynq")
    if list(pynq.Device.devices):
        pytest.skip("this machine is a PYNQ board")
    with pytest.raises(DeviceUnavailable) as err:
        Runtime(package, device="pynq")
    assert "no FPGA device" in _one_line(err)


def _fake_pynq(sim: SimulatedDevice, hwh_registers: dict, bus_bits: int) -> types.ModuleType:
    """pynq's API as PynqDevice uses it, over a simulated engine (registers + memory map)."""

    class FakeBuffer(np.ndarray):
        def flush(self): pass

        def invalidate(self): pass

        def freebuffer(self):
            sim.free(self.owner)

    def allocate(shape, dtype):
        owner = sim.allocate(int(np.prod(shape)), "pynq")
        buf = owner.handle.view(FakeBuffer)
        buf.owner, buf.device_address = owner, owner.address
        return buf

    class Ip:
        def read(self, offset): return sim.read_register(offset)

        def write(self, offset, value): sim.write_register(offset, value)

    class Overlay:
        def __init__(self, path):
            self.engine = Ip()
            # as the .hwh of a Vitis HLS build: each m_axi port as wide as its pointer's words
            params = {f"C_M_AXI_{b.upper()}_DATA_WIDTH": str(bus_bits) for b in ("wmem", "fmem_rd", "fmem_old", "fmem_wr")}
            params["C_M_AXI_DESC_DATA_WIDTH"] = "32"
            self.ip_dict = {"engine": {"type": "xilinx.com:hls:codesign_engine:1.0", "registers": hwh_registers,
                                       "parameters": params}}

        def download(self):
            raise AssertionError("the overlay must not be downloaded again under a running engine")

    class GPIO:  # PS GPIO (zynqmp): pl_resetn0, active low, drives the engine's reset
        @staticmethod
        def get_gpio_pin(index): return 1000 + 78 + index

        def __init__(self, pin, direction):
            assert (pin, direction) == (1000 + 78 + 95, "out")

        def write(self, value):
            if value == 0:
                sim.reset_engine()

    class MMIO:  # the Zynq-7000 SLCR: FPGA_RST_CTRL, behind its lock
        def __init__(self, base, length):
            assert base == 0xF8000000
            self.unlocked = False

        def write(self, offset, value):
            self.unlocked |= (offset, value) == (0x8, 0xDF0D)
            if offset == 0x240 and value & 1 and self.unlocked:
                sim.reset_engine()

    return types.SimpleNamespace(__version__="fake", Device=types.SimpleNamespace(devices=[object()]),
                                 Overlay=Overlay, allocate=allocate, GPIO=GPIO, MMIO=MMIO)


def _vitis_hwh_registers(offsets: dict[str, int]) -> dict:
    regs = {"CTRL": 0x0, "GIER": 0x4, "IP_IER": 0x8, "IP_ISR": 0xC}
    for name, off in offsets.items():
        regs.update({name: off} if name == "n_desc" else {f"{name}_1": off, f"{name}_2": off + 4})
    return {k: {"address_offset": v, "size": 32} for k, v in regs.items()}


@pytest.fixture(scope="module")
def overlay_package(project, tmp_path_factory):
    proj = Path(shutil.copytree(project.path, tmp_path_factory.mktemp("drv") / "withbit"))
    (proj / "overlay").mkdir()
    (proj / "overlay" / "tiny.bit").write_bytes(b"not a real bitstream")
    (proj / "overlay" / "tiny.hwh").write_text("<ROOT/>")
    return build_deploy_package(proj, proj.parent / "pkg")


def test_pynq_backend_against_a_fake_board(overlay_package, graph, images, monkeypatch):
    probe = Runtime(overlay_package, device="sim")
    sim = probe.device
    probe.close()
    fake = _fake_pynq(sim, _vitis_hwh_registers(VITIS_OFFSETS), 128)
    monkeypatch.setitem(sys.modules, "pynq", fake)
    with Runtime(overlay_package, device="pynq", batch=2) as rt:
        assert rt.device.kind == "pynq" and len(sim.live_buffers) == 4
        np.testing.assert_array_equal(rt.forward(images), golden_run(graph, images))
    assert sim.live_buffers == []

    # A bitstream whose registers sit elsewhere, or whose ports are narrower, is refused before any start.
    shifted = dict(VITIS_OFFSETS, wmem=0x28, fmem_rd=0x34, fmem_old=0x40, fmem_wr=0x4C)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(sim, _vitis_hwh_registers(shifted), 128))
    with pytest.raises(RegisterMapError) as err:
        Runtime(overlay_package, device="pynq")
    assert "wmem" in _one_line(err) and "0x28" in str(err.value)
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(sim, _vitis_hwh_registers(VITIS_OFFSETS), 64))
    with pytest.raises(DeviceError, match="64 bits wide"):
        Runtime(overlay_package, device="pynq")
    assert sim.live_buffers == []


@pytest.mark.parametrize("machine", ["aarch64", "armv7l"])
def test_pynq_timeout_resets_the_pl_instead_of_reloading(overlay_package, images, monkeypatch, machine):
    probe = Runtime(overlay_package, device="sim")
    sim = probe.device
    probe.close()
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(sim, _vitis_hwh_registers(VITIS_OFFSETS), 128))
    monkeypatch.setattr("codesign.driver.device.platform.machine", lambda: machine)
    rt = Runtime(overlay_package, device="pynq", timeout_s=0.1)
    sim.hang = True
    with pytest.raises(EngineTimeout, match="the engine was reset and is idle"):
        rt.infer(images[0])
    assert sim.resets == 1 and sim.live_buffers == []


def test_pynq_device_without_bitstream_fails_in_one_line(package, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(None, {}, 128))
    with pytest.raises(DeviceUnavailable) as err:
        Runtime(package, device="pynq")
    assert "no bitstream" in _one_line(err)


@pytest.mark.parametrize("side", [8, 1])
def test_golden_and_run_share_one_image_policy(package, graph, tmp_path, side, capsys):
    """An 8×8 or 1×1 image file: `golden --images`, `golden --dataset FOLDER` and `run` all refuse it with the
    same reason, and all classify it alike with --resize nearest."""
    from PIL import Image

    from codesign.cli import main
    from codesign.graph import save

    img = random_images(1, side, seed=3)[0]
    for split in ("train", "val"):  # an ImageFolder with its own splits: the test split is val/
        (tmp_path / "set" / split / "a").mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / "set" / split / "a" / "tiny.png")
    path = tmp_path / "set" / "val" / "a" / "tiny.png"
    ir = save(graph, tmp_path / "m.ir")
    runs = {"golden": ["golden", "--ir", str(ir), "--images", str(path)],
            "golden-dataset": ["golden", "--ir", str(ir), "--dataset", str(tmp_path / "set")],
            "run": ["run", "--package", str(package), str(path)]}
    for name, argv in runs.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"image is {side}×{side}, the model takes {RES}×{RES}" in err[0], (name, err)
    assert main(runs["golden"] + ["--resize", "nearest"]) == 0
    g = re.search(r"class (\d+)(?: \((.+)\))?", capsys.readouterr().out)
    assert main(runs["run"] + ["--resize", "nearest"]) == 0
    top1 = re.search(r": (.+?) \(\d", capsys.readouterr().out).group(1)  # run prints the top classes
    assert top1 == (g.group(2) or g.group(1))
