"""The signed-activation path of the engine: compiled in only where the hardware config needs it
(`signed_acts`, set by sized_for), refused by name where it is missing, and resolved out of the
sources of an unsigned engine (docs/engine.md, "The signed path")."""
from __future__ import annotations

import numpy as np
import pytest

from codesign.hls.project import TEMPLATES, resolve_signed
from codesign.hw.limits import sized_for
from codesign.hw.plan import ScheduleError
from codesign.hw.scheduler import schedule

from .test_codenet_csim import HW, fuzz_graph

BASE = dict(h=5, w=6, cin=4, cout=6, a_bits=8, conv=True, prepool=False, pool=False, spatial="dw1",
            upsample=False, interleave=None, from_image=False, d_bits=3, d_ch=1)


def test_resolve_signed_keeps_one_branch_and_nested_conditionals():
    text = ("a\n#if CODESIGN_SIGNED_ACTS\ns1\n#ifdef X\nn\n#else\nm\n#endif\ns2\n#else\nu\n#endif\nb\n"
            "#if CODESIGN_SIGNED_ACTS\nonly_signed\n#endif\n")
    assert resolve_signed(text, False) == "a\nu\nb\n"
    assert resolve_signed(text, True) == "a\ns1\n#ifdef X\nn\n#else\nm\n#endif\ns2\nb\nonly_signed\n"
    with pytest.raises(ValueError, match="unterminated"):
        resolve_signed("#if CODESIGN_SIGNED_ACTS\nx\n", True)


def test_every_engine_header_resolves_both_ways_without_the_macro():
    for header in sorted((TEMPLATES / "engine").glob("*.h")):
        for signed in (False, True):
            assert "CODESIGN_SIGNED_ACTS" not in resolve_signed(header.read_text(), signed), header.name


def test_sized_for_builds_the_signed_path_only_for_signed_tensors_and_check_fits_names_them():
    unsigned = fuzz_graph(np.random.RandomState(0), BASE)
    signed = fuzz_graph(np.random.RandomState(0), dict(BASE, signed=(True, False, True)))
    assert not sized_for(unsigned).signed_acts and sized_for(signed).signed_acts
    with pytest.raises(ScheduleError, match=r"'conv0' is a signed activation and this engine is built without "
                                            r"the signed path \(signed_acts: false\)"):
        schedule(signed, HW.with_(signed_acts=False))


def test_an_unsigned_engine_has_no_trace_of_the_signed_path(tmp_path):
    from codesign.hls.project import write_project

    graph = fuzz_graph(np.random.RandomState(0), BASE)
    hw = sized_for(graph)
    p = write_project(graph, hw, tmp_path / "p").path
    assert "signed_acts" not in (p / "hw.yaml").read_text()
    assert "SIGNED" not in (p / "src" / "descriptor.h").read_text() and "SIGNED" not in (p / "schedule.json").read_text()
    assert "act_value" not in (p / "src" / "types.h").read_text()
    sp = write_project(fuzz_graph(np.random.RandomState(0), dict(BASE, signed=(True, True, True))),
                       hw.with_(signed_acts=True), tmp_path / "s").path
    assert "FLAG_IN_SIGNED" in (sp / "src" / "descriptor.h").read_text() and "act_value" in (sp / "src" / "types.h").read_text()
