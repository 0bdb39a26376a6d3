"""Scheduler, memory layout and the functional simulator against the golden model."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.hw import descriptor, funcsim, layout
from codesign.hw.config import HardwareConfig, HardwareConfigError
from codesign.hw.limits import sized_for
from codesign.hw.plan import ScheduleError
from codesign.hw.scheduler import schedule
from codesign.hw.verify import verify

from .conftest import calibrated_qat_model, random_images


def funcsim_executor(hw):
    return lambda table, wmem, fmem: funcsim.run(table, wmem, fmem, hw)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 70), st.sampled_from([2, 4, 8]), st.sampled_from([64, 128]),
       st.data())
def test_fmap_pack_roundtrip(h, w, c, bits, bus, data):
    vals = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=h * w * c, max_size=h * w * c)),
                    dtype=np.uint8).reshape(h, w, c)
    packed = layout.pack_fmap(vals, bits, bus)
    assert packed.size == layout.fmap_words(h, w, c, bits, bus) * bus // 8
    assert np.array_equal(layout.unpack_fmap(packed, h, w, c, bits, bus), vals)


def test_fmap_packing_is_lowest_bits_first():
    vals = np.array([[[1, 2, 3]]], dtype=np.uint8)
    packed = layout.pack_fmap(vals, 4, 64)
    assert packed.tolist() == [0x21, 0x03, 0, 0, 0, 0, 0, 0]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 9), st.integers(1, 40), st.sampled_from([2, 4, 8]), st.sampled_from([64, 128]), st.data())
def test_weight_and_requant_pack_roundtrip(cout, cin, bits, bus, data):
    lim = (1 << (bits - 1)) - 1
    w = np.array(data.draw(st.lists(st.integers(-lim, lim), min_size=cout * cin, max_size=cout * cin))).reshape(cout, cin)
    assert np.array_equal(layout.unpack_weights(layout.pack_weights(w, bits, bus), cout, cin, bits, bus), w)
    m = np.array(data.draw(st.lists(st.integers(-(1 << 23) + 1, (1 << 23) - 1), min_size=cout, max_size=cout)))
    b = np.array(data.draw(st.lists(st.integers(-(1 << 46), 1 << 46), min_size=cout, max_size=cout)))
    m2, b2 = layout.unpack_requant(layout.pack_requant(m, b, bus), cout, bus)
    assert np.array_equal(m2, m) and np.array_equal(b2, b)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 9), st.integers(1, 40), st.sampled_from([2, 3, 4, 5, 8]), st.sampled_from([2, 4, 8]),
       st.sampled_from([64, 128]), st.data())
def test_weight_slices_roundtrip(cout, cin, bits, mac_bits, bus, data):
    """Conv weights go to wmem as mac_bits-wide slices, ceil(bits / mac_bits) rows per output channel,
    each row padded to a word; slice s of w is bits [s·mb, (s+1)·mb) of w (two's complement)."""
    lim = 1 << (bits - 1)
    w = np.array(data.draw(st.lists(st.integers(-lim, lim - 1), min_size=cout * cin, max_size=cout * cin))).reshape(cout, cin)
    packed = layout.pack_weight_slices(w, bits, mac_bits, bus)
    pw = layout.weight_slices(bits, 8, mac_bits)
    assert pw == -(-bits // mac_bits)
    assert packed.size == cout * pw * layout.weight_row_words(cin, mac_bits, bus) * bus // 8
    assert np.array_equal(layout.unpack_weight_slices(packed, cout, cin, pw, mac_bits, bus), w)
    # row 0 of channel 0 holds the lowest slice of each weight
    low = layout.unpack_weights(packed, 1, cin, mac_bits, bus)[0] & ((1 << mac_bits) - 1)
    assert np.array_equal(low, w[0] & ((1 << mac_bits) - 1))


def test_pack_requant_refuses_constants_the_engine_cannot_hold():
    """The engine reads M as 24-bit signed (accumulator x 24-bit product) and B as 48-bit."""
    layout.pack_requant(np.array([-(1 << 23), (1 << 23) - 1]), np.array([-(1 << 47), (1 << 47) - 1]), 64)
    with pytest.raises(layout.LayoutError, match="multiplier M of channel 1"):
        layout.pack_requant(np.array([0, 1 << 23]), np.array([0, 0]), 64)
    with pytest.raises(layout.LayoutError, match="bias B of channel 0"):
        layout.pack_requant(np.array([0]), np.array([1 << 47]), 64)


def test_descriptor_roundtrip_and_field_check():
    d = {name: i + 1 for i, name in enumerate(descriptor.FIELDS)}
    assert descriptor.decode(descriptor.encode([d]))[0] == d
    with pytest.raises(ValueError, match="unknown fields"):
        descriptor.encode([{**d, "bogus": 1}])


def test_dirac_blocks_are_built_in_place_without_copies(tiny_graph):
    sched = schedule(tiny_graph, sized_for(tiny_graph))
    assert not [c for c in sched.calls if c.conv is None], "no pass-through copies expected"
    # Every normal block writes its projection into the buffer its input lives in.
    for c in sched.calls:
        if c.name.endswith(".project") and not c.name.split(".")[0].endswith("_0"):
            assert sched.views[c.output].buffer == sched.views[c.name.split(".")[0] + ".branch"].buffer
    # Calls: one per conv (pool and shift fused), host runs pool + FC.
    n_conv = sum(1 for layer in tiny_graph.layers if layer.op == "conv1x1")
    assert len(sched.calls) == n_conv
    assert sched.host_layers == ["avgpool", "fc"]


def test_funcsim_is_bit_exact_per_call_and_end_to_end(tiny_graph):
    hw = sized_for(tiny_graph)
    sched = schedule(tiny_graph, hw)
    image = random_images(1, 32, seed=7)[0]
    per_call = verify(sched, tiny_graph, image, funcsim_executor(hw), per_call=True)
    assert per_call.ok, per_call.mismatch
    assert per_call.calls_checked == len(sched.calls)
    whole = verify(sched, tiny_graph, image, funcsim_executor(hw), per_call=False)
    assert whole.ok and whole.logits_equal


def test_verify_names_first_mismatch(tiny_graph):
    hw = sized_for(tiny_graph)
    sched = schedule(tiny_graph, hw)
    target = next(c for c in sched.calls if c.name == "stage1_1.expand")
    # Perturb one requant bias word of that call in wmem: only its layer can be blamed.
    q = target.descriptor["q_addr"] * hw.bus_bits // 8
    sched.wmem = sched.wmem.copy()
    sched.wmem[q + 4 + 3] ^= 0x40  # flip a high bit of B[31:0] of channel 0
    report = verify(sched, tiny_graph, random_images(1, 32, seed=7)[0], funcsim_executor(hw))
    assert not report.ok
    assert report.mismatch.call == "stage1_1.expand" and report.mismatch.channel == 0
    assert "stage1_1.expand" in str(report.mismatch)


def test_design_that_does_not_fit_is_refused(tiny_graph):
    hw = sized_for(tiny_graph).with_(max_channels=16)
    with pytest.raises(ScheduleError, match=r"layer '.*' does not fit the engine: \d+ channels > max_channels 16"):
        schedule(tiny_graph, hw)


def test_hardware_config_yaml_roundtrip(tmp_path):
    hw = HardwareConfig(pi=16, po=8)
    assert HardwareConfig.load(hw.save(tmp_path / "hw.yaml")) == hw
    (tmp_path / "bad.yaml").write_text("pi: 4\nwarp: 9\n")
    with pytest.raises(HardwareConfigError, match="unknown hardware config keys: warp"):
        HardwareConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(HardwareConfigError, match="bus_bits"):
        HardwareConfig(bus_bits=96)


# ---- wide convs split by output channel ---------------------------------------------------------

SPLIT_HW = HardwareConfig(pi=8, po=8)  # PO = 8: parts at multiples of 8, or of lcm(8, 5) = 40 with a shift


def _parts(sched) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in sched.calls:
        if c.channels:
            out.setdefault(c.conv, []).append(c)
    return out


def test_wide_convs_are_split_by_output_channel(tiny_graph):
    """A 40-tile weight buffer: the 128 → 256 head (16 input tiles) runs as 16 calls of 2 output tiles, the
    64 → 128 expand with its fused pool and shift as parts at multiples of 40 channels; every part loads
    weight and requant rows [a, b) of the layer's one packed copy and writes channels [a, b) of its view."""
    hw = sized_for(tiny_graph, SPLIT_HW).with_(max_wtiles=40)
    sched = schedule(tiny_graph, hw)
    parts = _parts(sched)
    assert [p.channels for p in parts["head"]] == [(a, a + 16) for a in range(0, 256, 16)]
    expand = parts["stage3_0.expand"]
    assert [p.channels for p in expand] == [(0, 40), (40, 80), (80, 120), (120, 128)]
    assert all(p.pool and p.shift for p in expand) and expand[1].name == "stage3_0.expand[40:80]"
    assert [p.channels for p in parts["stage3_1.project"]] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    whole = schedule(tiny_graph, sized_for(tiny_graph, SPLIT_HW))
    assert not _parts(whole)
    assert len(sched.calls) == len(whole.calls) + sum(len(ps) - 1 for ps in parts.values())
    nb = hw.bus_bits // 8
    for name, ps in parts.items():
        conv = tiny_graph.layer(name)
        cout, cin = conv.params["weight"].shape
        pw = layout.weight_slices(conv.attrs["weight_bits"], hw.weight_bits, hw.mac_bits)
        row = pw * layout.weight_row_words(cin, hw.mac_bits, hw.bus_bits)  # an output channel's slice rows
        d0 = ps[0].descriptor
        assert ps[0].channels[0] == 0 and ps[-1].channels[1] == cout
        assert all(p.channels[1] == q.channels[0] for p, q in zip(ps, ps[1:]))
        view = sched.views[ps[0].output]
        cbuf = sched.buffers[view.buffer].cbuf
        for p in ps:
            a, b = p.channels
            d = p.descriptor
            assert -(-cin // hw.pi) * -(-(b - a) // hw.po) * pw <= hw.weight_tiles, p.name
            assert d["cout"] == b - a and d["out_rot"] == (view.rot + a * view.stride) % cbuf
            for f in ("in_addr", "in_rot", "cin", "out_addr", "out_cbuf", "flags", "shift"):
                assert d[f] == d0[f], (p.name, f)
            assert d["w_addr"] == d0["w_addr"] + a * row and d["q_addr"] == d0["q_addr"] + 2 * a
            # what the engine loads from those addresses is exactly rows [a, b)
            w = layout.unpack_weight_slices(sched.wmem[d["w_addr"] * nb:], b - a, cin, pw, hw.mac_bits, hw.bus_bits)
            m, bias = layout.unpack_requant(sched.wmem[d["q_addr"] * nb:], b - a, hw.bus_bits)
            assert np.array_equal(w, conv.params["weight"][a:b])
            assert np.array_equal(m, conv.params["mult"][a:b]) and np.array_equal(bias, conv.params["bias"][a:b])
    # the layer's weights are stored once, not once per part
    assert sched.wmem.size == whole.wmem.size


def test_split_schedule_is_bit_exact_on_the_functional_simulator(tiny_graph):
    hw = sized_for(tiny_graph, SPLIT_HW).with_(max_wtiles=40)
    sched = schedule(tiny_graph, hw)
    image = random_images(1, 32, seed=7)[0]
    per_call = verify(sched, tiny_graph, image, funcsim_executor(hw), per_call=True)
    assert per_call.ok, per_call.mismatch
    assert per_call.calls_checked == len(sched.calls) and per_call.logits_equal
    whole = verify(sched, tiny_graph, image, funcsim_executor(hw), per_call=False)
    assert whole.ok and whole.logits_equal


def test_shift_parts_must_start_at_multiples_of_five(tiny_graph, monkeypatch):
    """Why the parts of a call with a fused shift start at multiples of lcm(PO, 5): the shift picks a
    channel's direction by its index in the call mod 5. Parts at multiples of PO = 8 alone compute
    the wrong directions, and verify names the part, the tensor's channel and the pixel."""
    from codesign.hw import limits

    hw = sized_for(tiny_graph, SPLIT_HW).with_(max_wtiles=40)
    monkeypatch.setattr(limits, "split_unit", lambda hw, shift: hw.po)
    sched = schedule(tiny_graph, hw)
    assert [p.channels for p in _parts(sched)["stage3_0.expand"]] == [(0, 32), (32, 64), (64, 96), (96, 128)]
    report = verify(sched, tiny_graph, random_images(1, 32, seed=7)[0], funcsim_executor(hw))
    assert not report.ok
    m = report.mismatch
    assert m.call == "stage3_0.expand[32:64]" and m.tensor == "stage3_0.shift" and 32 <= m.channel < 64
    assert "stage3_0.expand[32:64]" in str(m) and f"channel {m.channel}" in str(m)


def _two_convs(cin: int, cout: int, shift: bool):
    """image (4×4×3) → conv0 (3 → cin) → wide (cin → cout) [→ shift]."""
    from codesign.graph import Graph, Layer, TensorInfo, validate

    rng = np.random.RandomState(0)
    tensors = {"input": TensorInfo((4, 4, 3), 8, False, 1 / 255)}
    layers = []
    for name, x, c in (("conv0", "input", cin), ("wide", "conv0", cout)):
        w = rng.randint(-7, 8, (c, tensors[x].shape[2])).astype(np.int8)
        tensors[name] = TensorInfo((4, 4, c), 4, False, 0.1)
        layers.append(Layer(name, "conv1x1", [x], name, {"shift": 12, "weight_bits": 4},
                            {"weight": w, "mult": np.full(c, 100), "bias": np.zeros(c, np.int64)}))
    out = "wide"
    if shift:
        tensors["sh"] = TensorInfo((4, 4, cout), 4, False, 0.1)
        layers.append(Layer("sh", "shift", ["wide"], "sh", {"pattern": "dirac5"}))
        out = "sh"
    graph = Graph("two", "input", out, tensors, layers, {})
    validate(graph)
    return graph


def test_a_conv_that_cannot_be_split_small_enough_is_refused():
    """check_fits refuses, naming the layer and the numbers, a conv whose smallest part (PO channels, or
    lcm(PO, 5) with a fused shift) still exceeds the weight buffer."""
    hw = HardwareConfig(pi=8, po=8, max_channels=128, max_width=4, max_line=4 * 128, max_weights=128 * 128)
    schedule(_two_convs(64, 48, False), hw.with_(max_wtiles=8))  # 8 input tiles: one 8-channel part fits
    with pytest.raises(ScheduleError, match=r"layer 'wide' does not fit the engine: 48 weight tiles > the weight "
                                            r"buffer's 7 .*smallest part \(8 channels\) still needs 8 weight tiles"):
        schedule(_two_convs(64, 48, False), hw.with_(max_wtiles=7))
    # with a shift, 8-channel parts would fit but only 40-channel ones are right
    assert len(schedule(_two_convs(16, 80, True), hw.with_(max_wtiles=10)).calls) == 1 + 2
    with pytest.raises(ScheduleError, match=r"layer 'wide' .*smallest part \(40 channels, a multiple of "
                                            r"lcm\(PO, 5\).*needs 10 weight tiles.*multiple of 5"):
        schedule(_two_convs(16, 80, True), hw.with_(max_wtiles=9))


def test_split_schedule_survives_the_schedule_json_round_trip(tiny_graph):
    """What deploy ships (schedule.json) and the driver loads keeps the parts and their descriptors."""
    import json

    from codesign.driver.package import schedule_from_json

    sched = schedule(tiny_graph, sized_for(tiny_graph, SPLIT_HW).with_(max_wtiles=40))
    back = schedule_from_json(json.loads(sched.dumps()), sched.wmem)
    assert back.calls == sched.calls and any(c.channels for c in back.calls)
    assert np.array_equal(back.descriptor_table, sched.descriptor_table)
    assert [back.output_view(c) for c in back.calls] == [sched.output_view(c) for c in sched.calls]


def test_each_pass_is_written_when_asked(tiny_graph, tmp_path):
    """schedule(..., keep=DIR) writes the plan after every pass and the final schedule: fusion has calls
    but no buffers yet, placement adds buffers and views (and copies), the split adds the parts, and the
    last file is the schedule itself."""
    import json

    hw = sized_for(tiny_graph, SPLIT_HW).with_(max_wtiles=40)
    sched = schedule(tiny_graph, hw, keep=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["01-fuse.json", "02-place.json", "03-split.json", "04-emit.json"]
    fused, placed, split, emitted = (json.loads((tmp_path / n).read_text()) for n in names)
    assert fused["calls"] and not fused["buffers"] and not fused["views"]
    assert placed["buffers"] and set(placed["views"]) >= {c["output"] for c in fused["calls"]}
    assert len(split["calls"]) > len(placed["calls"]) and any(c["channels"] for c in split["calls"])
    assert emitted == json.loads(sched.dumps())
    assert all(c["descriptor"] for c in emitted["calls"]) and not any(c["descriptor"] for c in split["calls"])


def test_height_and_call_count_are_checked_against_the_engine(tiny_graph):
    """max_height and max_desc are hardware config fields the scheduler checks (the engine would skip a
    taller map's descriptor, and walk at most max_desc calls), not template defaults."""
    hw = sized_for(tiny_graph, HardwareConfig())
    assert hw.max_height == tiny_graph.tensors[tiny_graph.input].shape[0]
    with pytest.raises(ScheduleError, match=r"height 32 > max_height 16"):
        schedule(tiny_graph, hw.with_(max_height=16))
    n = len(schedule(tiny_graph, hw).calls)
    with pytest.raises(ScheduleError, match=rf"{n} engine calls > max_desc {n - 1}"):
        schedule(tiny_graph, hw.with_(max_desc=n - 1))
