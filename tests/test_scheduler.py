"""Scheduler, memory layout and the functional simulator against the golden model."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.hw import descriptor, funcsim, layout
from codesign.hw.config import HardwareConfig, HardwareConfigError
from codesign.hw.scheduler import ScheduleError, schedule, sized_for
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
