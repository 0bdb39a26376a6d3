"""What a schedule needs from the engine and whether a hardware config provides it: call geometry,
the buffer sizes a graph requires (`requirements`, `sized_for`), the limit checks that name the first
call over a limit, and the weight-buffer arithmetic that decides how a wide conv is split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph import Graph, Layer
from ..graph.ir import half_even
from ..graph.opdef import op_def
from . import layout
from .config import HardwareConfig
from .fuse import fuse
from .plan import Call, ScheduleError, hw_max_dilation

@dataclass(frozen=True)
class Requirements:
    """The smallest engine buffers that hold this schedule (what `hw` must provide)."""

    max_channels: int
    max_width: int
    max_height: int
    max_line: int
    max_weights: int
    weight_bits: int
    act_bits: int
    max_dilation: int = 0  # largest deform3x3 range R (0: no deformable layer)
    max_kernel: int = 0  # largest k of a k×k conv (0: none, no window unit)
    window_line: int = 0  # the window unit's widest row: W × ⌈Cin/PI⌉·PI values of a k×k conv's input
    half_even: bool = False  # an engine-run requant rounds ties to even (the tie logic is built)
    signed_acts: bool = False  # an engine call reads or writes a signed activation (two's complement)


def call_window(graph: Graph, call: Call) -> tuple[int, int, int] | None:
    """(kernel, stride, padding) of a call whose conv reads k×k windows (conv2d), else None."""
    return op_def(graph.layer(call.conv).op).window(graph.layer(call.conv)) if call.conv else None


def mac_inputs(cin: int, window: tuple[int, int, int] | None, pi: int) -> int:
    """Inputs per output pixel of the MAC array: cin, or for a k×k window k·k taps of ⌈cin/PI⌉
    whole PI-vectors each (the window unit sends every tap's channels as their own vectors)."""
    return cin if window is None else window[0] ** 2 * -(-cin // pi) * pi


def window_line(graph: Graph, call: Call, pi: int) -> int:
    """Values of one input row in the window unit's line buffer: W × ⌈cin/PI⌉·PI (0: no window)."""
    if call_window(graph, call) is None:
        return 0
    _, w, cin = graph.tensors[call.input].shape
    return w * -(-cin // pi) * pi


def call_geometry(graph: Graph, call: Call) -> tuple[int, int, int, int, int]:
    """(H, W) of the MAC array's pixel grid (after PREPOOL or the k×k window), cin, cout and the
    widest line (W × C) the engine's line buffers hold: pool / shift / spatial (W × cout), PREPOOL
    (in_w/2 × cin) and the writer's UPSAMPLE row (one input row of the output, W_out/2 × cout).
    The window unit's rows are `window_line`."""
    h, w, cin = graph.tensors[call.input].shape
    if call.prepool:
        h, w = h // 2, w // 2
    if (win := call_window(graph, call)) is not None:
        k, s, p = win
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    cout = graph.tensors[call.output].shape[2]
    line = w * cout if (call.pool or call.shift or call.spatial) else 0
    if call.prepool:
        line = max(line, w * cin)
    if call.upsample:
        line = max(line, graph.tensors[call.output].shape[1] // 2 * cout)
    return h, w, cin, cout, line


def spatial_layer(graph: Graph, call: Call) -> Layer | None:
    return graph.layer(call.spatial) if call.spatial else None


def half_even_layers(graph: Graph, call: Call) -> list[Layer]:
    """The call's requantizing layers (its conv, its spatial layer) that round ties to even: the
    descriptor's HALF_EVEN / S_HALF_EVEN flags, which need an engine built with `half_even`."""
    layers = ([graph.layer(call.conv)] if call.conv else []) + [x for x in [spatial_layer(graph, call)] if x]
    return [layer for layer in layers if half_even(layer)]


def signed_tensors(graph: Graph, call: Call) -> list[str]:
    """The signed activations a call reads or writes (its input, its conv's and its spatial op's
    outputs, its output): IN_SIGNED / SIGNED / S_SIGNED, which need an engine built with `signed_acts`."""
    names = [call.input, call.output] + [layer.output for layer in
                                         ([graph.layer(call.conv)] if call.conv else []) +
                                         [x for x in [spatial_layer(graph, call)] if x]]
    return [n for n in dict.fromkeys(names) if graph.tensors[n].signed]


def requirements(graph: Graph, calls: list[Call], hw: HardwareConfig | None = None) -> Requirements:
    """The buffers `calls` need; a k×k conv's MAC inputs depend on the array's PI (`hw`'s, default
    the default config's)."""
    pi = (hw or HardwareConfig()).pi
    rows = [call_geometry(graph, c) for c in calls]
    convs = [graph.layer(c.conv) for c in calls if c.conv]
    mac_in = [mac_inputs(r[2], call_window(graph, c), pi) for c, r in zip(calls, rows)]
    windows = [win for c in calls if (win := call_window(graph, c)) is not None]
    spatial = [layer for c in calls if (layer := spatial_layer(graph, c)) is not None]
    act_bits = max(graph.tensors[c.output].bits for c in calls)
    act_bits = max([act_bits] + [graph.tensors[layer.output].bits for layer in convs])
    return Requirements(
        max_channels=max(max(m, r[3]) for m, r in zip(mac_in, rows)),
        # the input, and a k×k conv's output grid (padding can make it larger)
        max_width=max(max(graph.tensors[c.input].shape[1], r[1]) for c, r in zip(calls, rows)),
        max_height=max(max(graph.tensors[c.input].shape[0], r[0]) for c, r in zip(calls, rows)),
        max_line=max(max(r[4] for r in rows), 1),
        max_weights=max((m * r[3] for c, m, r in zip(calls, mac_in, rows) if c.conv), default=1),
        weight_bits=max((layer.attrs["weight_bits"] for layer in convs + spatial), default=2),
        act_bits=act_bits,
        max_dilation=max((op_def(layer.op).max_dilation(layer) for layer in spatial), default=0),
        max_kernel=max((win[0] for win in windows), default=0),
        window_line=max((window_line(graph, c, pi) for c in calls), default=0),
        half_even=any(half_even_layers(graph, c) for c in calls),
        signed_acts=any(signed_tensors(graph, c) for c in calls),
    )


def check_fits(req: Requirements, hw: HardwareConfig, graph: Graph, calls: list[Call]) -> None:
    """Name the first call that exceeds an engine limit."""
    r_hw = hw_max_dilation(hw)
    for c in calls:
        h, w, cin, cout, line = call_geometry(graph, c)
        hin, win = graph.tensors[c.input].shape[:2]
        problems = []
        if hin > hw.max_height:
            problems.append(f"height {hin} > max_height {hw.max_height}")
        if max(cin, cout) > hw.max_channels:
            problems.append(f"{max(cin, cout)} channels > max_channels {hw.max_channels}")
        window = call_window(graph, c)
        if window is not None:
            problems += window_problems(graph, c, window, cin, hw)
        if win > hw.max_width:
            problems.append(f"width {win} > max_width {hw.max_width}")
        if line > hw.max_line:
            problems.append(f"line buffer {line} values > max_line {hw.max_line}")
        if c.conv:
            conv = graph.layer(c.conv)
            m = mac_inputs(cin, window, hw.pi)
            if not split_channels(m, cout, conv.attrs["weight_bits"], hw, c.shift):
                problems.append(split_refusal(m, cout, conv.attrs["weight_bits"], hw, c.shift))
            if conv.attrs["weight_bits"] > hw.weight_bits:
                problems.append(f"{conv.attrs['weight_bits']}-bit weights > the MAC array's {hw.weight_bits} bits")
            if graph.tensors[conv.output].bits > hw.act_bits:
                problems.append(f"{graph.tensors[conv.output].bits}-bit activations > act_bits {hw.act_bits}")
        sp = spatial_layer(graph, c)
        if sp is not None:
            if not hw.spatial_unit:
                problems.append(f"'{sp.name}' ({sp.op}) needs the spatial unit, which this engine is built "
                                "without (spatial_unit: false)")
            if sp.attrs["weight_bits"] > hw.weight_bits:
                problems.append(f"{sp.attrs['weight_bits']}-bit weights of '{sp.name}' > the engine's "
                                f"{hw.weight_bits} bits")
            if op_def(sp.op).max_dilation(sp) > r_hw:
                raise ScheduleError(
                    f"layer '{sp.name}' (deform3x3) needs dilations up to {sp.attrs['max_dilation']}, but the "
                    f"engine's deformable line buffer holds {2 * r_hw + 1} rows (hardware max_dilation {r_hw}, "
                    f"reach ±{r_hw}); build the engine with max_dilation >= {sp.attrs['max_dilation']}")
        if graph.tensors[c.output].bits > hw.act_bits:
            problems.append(f"{graph.tensors[c.output].bits}-bit activations > act_bits {hw.act_bits}")
        if not hw.half_even:
            problems += [f"'{layer.name}' ({layer.op}) rounds ties to even (QONNX ROUND) and this engine is built "
                         "without the tie logic (half_even: false)" for layer in half_even_layers(graph, c)]
        if not hw.signed_acts:
            problems += [f"'{n}' is a signed activation and this engine is built without the signed path "
                         "(signed_acts: false)" for n in signed_tensors(graph, c)]
        if problems:
            raise ScheduleError(f"layer '{c.name}' does not fit the engine: {'; '.join(problems)}")


def window_problems(graph: Graph, c: Call, win: tuple[int, int, int], cin: int, hw: HardwareConfig) -> list[str]:
    """What keeps the window unit from running call `c`'s k×k conv (check_fits's problems)."""
    k, s, _ = win
    problems = []
    if k > hw.max_kernel:
        problems.append(f"a {k}x{k} kernel > the window unit's max_kernel {hw.max_kernel}"
                        + (" (the engine is built without it)" if hw.max_kernel == 0 else ""))
    if s > 255:
        problems.append(f"stride {s} > 255 (the descriptor's window field)")
    ho, wo = call_geometry(graph, c)[:2]
    if ho > hw.max_height or wo > hw.max_width:
        problems.append(f"output grid {ho}x{wo} (padded) > max_height x max_width {hw.max_height}x{hw.max_width}")
    if (line := window_line(graph, c, hw.pi)) > hw.window_line:
        problems.append(f"window line {line} values (W x ceil(cin/PI) x PI) > window_line {hw.window_line}")
    if (m := mac_inputs(cin, win, hw.pi)) > hw.max_channels:
        problems.append(f"{m} MAC inputs ({k}x{k} taps x {-(-cin // hw.pi)} vectors of PI = {hw.pi}) > "
                        f"max_channels {hw.max_channels}")
    return problems


def check_engine_tensors(graph: Graph, hw: HardwareConfig, tensors: list[str], what: str) -> None:
    for name in tensors:
        info = graph.tensors[name]
        if name != graph.input and (info.signed or info.bits > hw.act_bits):
            raise ScheduleError(f"tensor '{name}' {what} the engine is {'signed ' if info.signed else ''}"
                                f"{info.bits}-bit; the engine stores unsigned activations of act_bits {hw.act_bits}")


def weight_tiles(cin: int, cout: int, w_bits: int, hw: HardwareConfig) -> int:
    """Weight-buffer entries of a cin -> cout 1x1 conv of w_bits weights: a PI x PO tile per
    mac_bits-wide slice (conv1x1.h)."""
    return -(-cin // hw.pi) * -(-cout // hw.po) * layout.weight_slices(w_bits, hw.weight_bits, hw.mac_bits)


def call_mac_inputs(graph: Graph, call: Call, hw: HardwareConfig) -> int:
    """The MAC array's inputs per pixel in call `call` on `hw` (`mac_inputs`)."""
    return mac_inputs(graph.tensors[call.input].shape[2], call_window(graph, call), hw.pi)


def call_weight_tiles(graph: Graph, call: Call, hw: HardwareConfig) -> int:
    _, _, _, cout, _ = call_geometry(graph, call)
    return weight_tiles(call_mac_inputs(graph, call, hw), cout, graph.layer(call.conv).attrs["weight_bits"], hw)


def part_fits(cin: int, n: int, w_bits: int, hw: HardwareConfig) -> bool:
    """Do the weights of n output channels (one call) fit the weight buffer and max_weights?"""
    return weight_tiles(cin, n, w_bits, hw) <= hw.weight_tiles and cin * n <= hw.max_weights


def split_unit(hw: HardwareConfig, shift: bool) -> int:
    """Parts of a split conv start at multiples of this: PO (whole output tiles), or lcm(PO, 5) with a
    fused shift, whose direction shift.h picks by the channel's index in the call mod 5."""
    return math.lcm(hw.po, 5) if shift else hw.po


def split_channels(cin: int, cout: int, w_bits: int, hw: HardwareConfig, shift: bool = False) -> list[tuple[int, int]]:
    """The output-channel ranges [a, b) of the engine calls a cin → cout conv of w_bits weights runs as.

    [(0, cout)] when its weights fit the weight buffer (`weight_tiles` ≤ hw.weight_tiles) and
    max_weights; else the fewest parts that each fit, with boundaries at multiples of
    `split_unit` and the units shared out as equally as possible (the first parts take the extra
    unit, the last may be short). [] when not even a single unit fits.
    """
    if part_fits(cin, cout, w_bits, hw):
        return [(0, cout)]
    unit = split_unit(hw, shift)
    units = -(-cout // unit)
    for k in range(2, units + 1):
        bounds = [min(cout, unit * -(-i * units // k)) for i in range(k + 1)]
        parts = list(zip(bounds, bounds[1:]))
        if all(part_fits(cin, b - a, w_bits, hw) for a, b in parts):
            return parts
    return []


def split_refusal(cin: int, cout: int, w_bits: int, hw: HardwareConfig, shift: bool) -> str:
    """Why a cin → cout conv fits neither whole nor split by output channel (check_fits's problem)."""
    over = []
    if (tiles := weight_tiles(cin, cout, w_bits, hw)) > hw.weight_tiles:
        over.append(f"{tiles} weight tiles > the weight buffer's {hw.weight_tiles} (max_wtiles)")
    if cin * cout > hw.max_weights:
        over.append(f"{cin * cout} weights > max_weights {hw.max_weights}")
    unit = min(split_unit(hw, shift), cout)
    why = (f"{' and '.join(over)}, and split by output channel its smallest part ({unit} channels"
           f"{', a multiple of lcm(PO, 5) for its fused shift' if shift else ''}) still needs "
           f"{weight_tiles(cin, unit, w_bits, hw)} weight tiles ({cin * unit} weights)")
    if shift and part_fits(cin, min(hw.po, cout), w_bits, hw):
        why += (f"; parts of PO = {hw.po} channels would fit, but the shift picks a channel's direction by its "
                "index in the call mod 5 (shift.h), so a part must start at a multiple of 5")
    return why


# costs BRAM in proportion to its depth, while a conv with more entries only re-reads its input once per
# part (split_wide). A user's config may set a deeper max_wtiles.
WEIGHT_TILES_CAP = 512


def weight_tiles_needed(graph: Graph, calls: list[Call], hw: HardwareConfig) -> int:
    """The weight buffer depth (max_wtiles) for graph on hw's array: its largest conv's entries, at
    most WEIGHT_TILES_CAP (a wider conv is split by output channel), and at least what the largest
    smallest part of a split conv needs."""
    need = max((call_weight_tiles(graph, c, hw) for c in calls if c.conv), default=1)
    if need <= WEIGHT_TILES_CAP:
        return need
    floor = 1
    for c in calls:
        if c.conv:
            _, _, _, cout, _ = call_geometry(graph, c)
            floor = max(floor, weight_tiles(call_mac_inputs(graph, c, hw), min(split_unit(hw, c.shift), cout),
                                             graph.layer(c.conv).attrs["weight_bits"], hw))
    return max(WEIGHT_TILES_CAP, floor)


def sized_for(graph: Graph, hw: HardwareConfig | None = None) -> HardwareConfig:
    """`hw` (default: the default config) with its buffer limits set to exactly what `graph` needs."""
    calls, _ = fuse(graph)
    base = hw or HardwareConfig()
    req = requirements(graph, calls, base)
    act = next(b for b in (2, 4, 8) if b >= req.act_bits)
    wb = next(b for b in (2, 4, 8) if b >= req.weight_bits)
    return base.with_(max_channels=req.max_channels, max_width=req.max_width, max_height=req.max_height,
                      max_line=req.max_line,
                      max_weights=req.max_weights, weight_bits=wb, act_bits=act,
                      max_wtiles=weight_tiles_needed(graph, calls, base),
                      spatial_unit=any(c.spatial for c in calls), max_kernel=req.max_kernel,
                      window_line=req.window_line, half_even=req.half_even,
                      signed_acts=req.signed_acts)
