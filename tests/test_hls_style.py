"""Static checks of the HLS units for the patterns that break II = 1 (shared/HLS-STYLE.md).

The cycle count assumes every pipelined loop meets its II. These checks catch, in the source, the
access patterns that made the first engine miss it by a factor of the lane count: a partitioned
array indexed by a run-time expression (`line[x*c + ch]`, `out[view.logical(p)]`), so that every
unrolled lane may hit every bank; banks chosen by index arithmetic (cyclic/block partitions); and
nested pipelined loops that pay their fill per inner trip.
"""
import re

import pytest

from codesign.locations import HLS_TEMPLATES

ENGINE_DIR = HLS_TEMPLATES / "engine"
HEADERS = sorted(ENGINE_DIR.glob("*.h"))
PARTITION = re.compile(r"ARRAY_PARTITION variable = (\w+) (complete|cyclic|block)[^)]*?(?:dim = (\d+))?\)")
UNROLLED_FOR = re.compile(r"for \(int (\w+) = [^;]*;[^)]*\)\s*\{\s*(?:\w+:\s*)?HLS_PRAGMA\(UNROLL")
CONST_LOCAL = re.compile(r"const int (\w+) = ([^;]+);")


def _code(text: str) -> str:
    """The source without comments."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _closing(code: str, i: int) -> int:
    """Index of the bracket that closes the one at code[i] ('[' or '{')."""
    pair = {"[": "]", "{": "}"}[code[i]]
    depth, j = 0, i
    while True:
        depth += {code[i]: 1, pair: -1}.get(code[j], 0)
        if depth == 0:
            return j
        j += 1


def _subscripts(code: str, name: str) -> list[list[str]]:
    """Every access name[a][b]... as its list of subscript expressions (balanced brackets)."""
    out = []
    for m in re.finditer(rf"(?<![\w.]){name}\s*\[", code):
        i, subs = m.end() - 1, []
        while i < len(code) and code[i] == "[":
            j = _closing(code, i)
            subs.append(code[i + 1:j].strip())
            i = j + 1
            while i < len(code) and code[i] == " ":
                i += 1
        out.append(subs)
    return out


def _lane_names(code: str) -> set[str]:
    """Unrolled loop indices, and `const int` locals computed from them and constants only (a constant
    per lane after unrolling, e.g. `const int pi = l * SB / 64`)."""
    names = set(UNROLLED_FOR.findall(code))
    defs = CONST_LOCAL.findall(code)
    grew = True
    while grew:
        grew = False
        for name, expr in defs:
            if name not in names and all(_is_lane_index(e, names) for n, e in defs if n == name):
                names.add(name)
                grew = True
    return names


def _is_lane_index(expr: str, unrolled: set[str]) -> bool:
    """An unrolled loop index, a compile-time constant, or arithmetic of those only."""
    for token in re.findall(r"[A-Za-z_]\w*", expr):
        if token in unrolled or token.isupper() or token.startswith("C::") or token in ("C",):
            continue
        return False
    return True


@pytest.mark.parametrize("header", HEADERS, ids=lambda p: p.name)
def test_no_banks_chosen_by_index_arithmetic(header):
    """Cyclic/block partitions pick the bank from the index; with a run-time index that is every bank."""
    bad = [m.group(0) for m in PARTITION.finditer(_code(header.read_text())) if m.group(2) != "complete"]
    assert not bad, f"{header.name}: {bad} - pack the lanes into one word or partition a lane dimension completely"


@pytest.mark.parametrize("header", HEADERS, ids=lambda p: p.name)
def test_partitioned_dimensions_are_indexed_by_lanes_or_constants(header):
    """An array partitioned on one dimension and not the others is a set of memories (banks): a run-time
    index in the partitioned dimension makes every lane need a port on every bank. (An array partitioned
    completely is registers; a run-time index there is a multiplexer, which costs LUTs, not II.)"""
    code = _code(header.read_text())
    unrolled = _lane_names(code)
    problems = []
    for m in PARTITION.finditer(code):
        name, dim = m.group(1), int(m.group(3) or 1)
        accesses = _subscripts(code, name)
        ndim = len(accesses[0]) if accesses else 0  # the declaration comes first
        if dim == 0 or ndim <= 1 or len(re.findall(rf"variable = {name} complete", code)) >= ndim:
            continue  # registers
        for subs in accesses[1:]:
            if dim - 1 < len(subs) and not _is_lane_index(subs[dim - 1], unrolled):
                problems.append(f"{name}[...{subs[dim - 1]}...] (partitioned dim {dim} of {ndim})")
    assert not problems, f"{header.name}: run-time index into a partitioned dimension: {sorted(set(problems))}"


# Loops that may enclose a pipelined loop: the engine's per-descriptor loop (one call after another),
# and in io.h the loops whose every trip is an m_axi burst (a row, a read-modify-write chunk): a burst
# pays its latency anyway, and its beats run at II = 1 inside.
OUTER_LOOPS_ALLOWED = {"engine.h": {"calls"}, "io.h": {"rows", "chunks"}}


def _loops(code: str) -> list[tuple[str, int, int, bool]]:
    """(label, body start, body end, unrolled) of every for-loop with a braced body."""
    out = []
    for m in re.finditer(r"(?:(\w+):\s*)?for\s*\(", code):
        i = code.index("{", m.end())
        j = _closing(code, i)
        unrolled = re.match(r"\{\s*(?:\w+:\s*)?HLS_PRAGMA\(UNROLL", code[i:]) is not None
        out.append((m.group(1) or "", i, j, unrolled))
    return out


def _nested_pipelines(code: str, allowed: set[str] = frozenset()) -> list[str]:
    """Pipelined loops that sit inside another (not unrolled, not allowed) loop: nest-and-break style,
    paying the pipeline's fill on every outer trip."""
    loops = _loops(code)
    bad = []
    for p in re.finditer(r"HLS_PRAGMA\(PIPELINE", code):
        enclosing = [lp for lp in loops if lp[1] < p.start() < lp[2]]
        own = max(enclosing, key=lambda lp: lp[1])  # the innermost: the pipelined loop itself
        outer = [lp for lp in enclosing if lp is not own and not lp[3] and lp[0] not in allowed]
        if outer:
            bad.append(f"{own[0] or '?'} inside {', '.join(lp[0] or '?' for lp in outer)}")
    return bad


@pytest.mark.parametrize("header", HEADERS, ids=lambda p: p.name)
def test_pipelined_loops_are_flat(header):
    """One flat pipelined loop per stage (rows × columns × vectors as one index space): a pipelined loop
    nested in another loop pays its fill and drain on every outer trip."""
    bad = _nested_pipelines(_code(header.read_text()), OUTER_LOOPS_ALLOWED.get(header.name, set()))
    assert not bad, f"{header.name}: nested pipelined loops: {bad}"


def test_the_checks_catch_the_old_patterns():
    """The checks above would have failed the first engine's reader and shift unit."""
    old_shift = """
      static ap_uint<B> line[2][MAX_LINE];
      HLS_PRAGMA(ARRAY_PARTITION variable = line cyclic factor = P dim = 2)
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        r = line[cur][x * c + k * P + i];
      }
      for (int x = 0; x < MAX_W; ++x) { if (x >= w) break; }"""
    assert PARTITION.search(old_shift).group(2) == "cyclic"
    old_reader = """
      ap_uint<8> out[N];
      HLS_PRAGMA(ARRAY_PARTITION variable = out cyclic factor = P)
      for (int l = 0; l < LANES; ++l) {
        HLS_PRAGMA(UNROLL)
        const int j = view.logical(lo + l);
        out[j] = lane[l];
      }"""
    code = _code(old_reader)
    unrolled = _lane_names(code)
    assert unrolled == {"l"}  # j is computed from run-time state (the view): not a lane constant
    assert not _is_lane_index(_subscripts(code, "out")[-1][0], unrolled)
    assert PARTITION.search(code).group(2) == "cyclic"
    old_nest = """
      rows: for (int y = 0; y < MAX_H; ++y) {
        if (y >= h) break;
        cols: for (int x = 0; x < MAX_W; ++x) {
          HLS_PRAGMA(PIPELINE II = 1)
          if (x >= w) break;
        }
      }"""
    assert _nested_pipelines(old_nest) == ["cols inside rows"]
