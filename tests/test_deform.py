"""The deformable-convolution family and the co-designed square deformable op."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.models.deform import (DeformConv3x3, DeformConvBNAct, DWConvBNAct, Upsample2x, bilinear_sample,
                                    gather, rounded_sample, square_deform)
from codesign.models.layers import ModelConfigError, QuantSpec

FLOAT = QuantSpec(quantize=False)
W4A8 = QuantSpec(weight_bits=4, act_bits=8)


def int_tensor(gen: torch.Generator, shape, low=-8, high=8) -> torch.Tensor:
    """Small integers as floats: every sum of products is exact, so results compare with ==."""
    return torch.randint(low, high + 1, shape, generator=gen).float()


def loop_reference(x: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """out[n, c, y, x] = Σ_{ky, kx ∈ {−1,0,1}} w[c, 0, ky+1, kx+1] · x[n, c, y + ky·d, x + kx·d] (0 outside)."""
    n, c, h, wd = x.shape
    out = np.zeros_like(x)
    for b in range(n):
        for ch in range(c):
            for y in range(h):
                for xx in range(wd):
                    dil = int(d[b, 0, y, xx])
                    for ky in (-1, 0, 1):
                        for kx in (-1, 0, 1):
                            sy, sx = y + ky * dil, xx + kx * dil
                            if 0 <= sy < h and 0 <= sx < wd:
                                out[b, ch, y, xx] += w[ch, 0, ky + 1, kx + 1] * x[b, ch, sy, sx]
    return out


def test_dilation_one_is_a_depthwise_conv_exactly():
    gen = torch.Generator().manual_seed(0)
    x, w = int_tensor(gen, (2, 5, 9, 7)), int_tensor(gen, (5, 1, 3, 3))
    out = square_deform(x, torch.ones(2, 1, 9, 7), w)
    assert torch.equal(out, F.conv2d(x, w, padding=1, groups=5))
    xf, wf = torch.randn(2, 5, 9, 7, generator=gen), torch.randn(5, 1, 3, 3, generator=gen)
    torch.testing.assert_close(square_deform(xf, torch.ones(2, 1, 9, 7), wf), F.conv2d(xf, wf, padding=1, groups=5))


@settings(max_examples=250, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       max_d=st.integers(0, 7), seed=st.integers(0, 2 ** 31 - 1))
def test_rounded_op_matches_loop_reference(n, c, h, w, max_d, seed):
    gen = torch.Generator().manual_seed(seed)
    x, wt = int_tensor(gen, (n, c, h, w)), int_tensor(gen, (c, 1, 3, 3))
    d = torch.randint(0, max_d + 1, (n, 1, h, w), generator=gen).float()
    out = square_deform(x, d, wt)
    assert np.array_equal(out.numpy(), loop_reference(x.numpy(), d.numpy(), wt.numpy()))


def test_dilation_zero_reads_the_centre_nine_times():
    x = torch.randn(1, 2, 4, 4)
    w = torch.ones(2, 1, 3, 3)
    torch.testing.assert_close(square_deform(x, torch.zeros(1, 1, 4, 4), w), 9 * x)


def test_square_deform_rejects_a_dense_weight():
    with pytest.raises(ModelConfigError, match="depthwise"):
        square_deform(torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4), torch.zeros(2, 2, 3, 3))


def test_straight_through_gradient_on_a_ramp():
    # x = column index; only the (0, +1) tap is 1: out = x[y, x + d] = x + d away from the border,
    # so d(out)/dd = 1 — the central difference of a ramp is exact.
    x = torch.arange(16.0).repeat(1, 1, 16, 1)
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 2] = 1
    d = torch.full((1, 1, 16, 16), 2.0, requires_grad=True)
    out = square_deform(x, d, w)
    assert torch.equal(out[0, 0, :, :14], x[0, 0, :, :14] + 2)
    out.sum().backward()
    assert torch.equal(d.grad[0, 0, 1:-1, 1:12], torch.ones(14, 11))


@pytest.mark.parametrize("spec", [FLOAT, W4A8], ids=["float", "qat"])
def test_ste_gives_the_offset_conv_a_gradient(spec):
    torch.manual_seed(0)
    block = DeformConvBNAct(6, spec).train()
    x = torch.rand(2, 6, 10, 10)
    assert torch.equal(block.dilation(x), torch.ones(2, 1, 10, 10))  # starts as a plain 3×3 depthwise conv
    block(x).pow(2).sum().backward()
    assert block.offset.weight.grad.abs().sum() > 0 and block.offset.bias.grad.abs().sum() > 0
    assert block.dw.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", [FLOAT, W4A8], ids=["float", "qat"])
@pytest.mark.parametrize("max_dilation", [5, 7])
def test_dilation_is_an_integer_clamped_to_range(spec, max_dilation):
    block = DeformConvBNAct(3, spec, max_dilation=max_dilation)
    with torch.no_grad():
        block.offset.weight.zero_()
        block.offset.bias.fill_(0.0)
        pre = torch.linspace(-3, 12, 64).view(1, 1, 8, 8)
        d = block.dilation_act(pre)
    expected = pre.clamp(0, max_dilation).round()  # round half to even, as torch and Brevitas
    assert torch.equal(d, expected)


def test_qat_dilation_quantizer_has_constant_scale_one():
    block = DeformConvBNAct(4, W4A8)
    quant = block.dilation_act.quant
    assert float(quant.act_quant.scale()) == 1.0 and int(quant.act_quant.bit_width()) == 3
    assert block.dw.groups == 4 and block.dw.stride == (1, 1) and block.dw.padding == (1, 1)
    assert block.offset.out_channels == 1 and block.offset.kernel_size == (1, 1) and block.offset.bias is not None


def test_bad_max_dilation():
    with pytest.raises(ModelConfigError, match="max_dilation"):
        DeformConvBNAct(4, FLOAT, max_dilation=0)


def test_bilinear_equals_gather_at_integer_positions():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    py = torch.randint(-2, 8, (2, 9, 6, 5), generator=gen).float()
    px = torch.randint(-2, 7, (2, 9, 6, 5), generator=gen).float()
    torch.testing.assert_close(bilinear_sample(x, py, px), gather(x, py, px), rtol=0, atol=0)
    torch.testing.assert_close(rounded_sample(x, py, px), gather(x, py, px), rtol=0, atol=0)


def test_bilinear_matches_grid_sample():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 5, generator=gen)
    py = torch.rand(2, 9, 6, 5, generator=gen) * 9 - 2
    px = torch.rand(2, 9, 6, 5, generator=gen) * 8 - 2
    grid = torch.stack([2 * px / 4 - 1, 2 * py / 5 - 1], dim=-1)  # align_corners=True: −1..1 ↔ 0..size−1
    ref = torch.stack([F.grid_sample(x, grid[:, k], align_corners=True, padding_mode="zeros") for k in range(9)], 2)
    torch.testing.assert_close(bilinear_sample(x, py, px), ref)


def test_family_members_at_the_regular_grid_are_3x3_convs():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 7)
    for depthwise in (True, False):
        for square in (True, False):
            for rounded in (True, False):
                conv = DeformConv3x3(4, 4, depthwise=depthwise, square=square, rounded=rounded)
                groups = 4 if depthwise else 1
                torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, padding=1, groups=groups))


def test_bounded_members_clamp():
    x = torch.randn(1, 2, 20, 20)
    square = DeformConv3x3(2, 2, square=True, rounded=True, bound=3)
    free = DeformConv3x3(2, 2, square=False, rounded=True, bound=3)
    with torch.no_grad():
        square.offset.bias.fill_(50.0)  # d → 3
        free.offset.bias.fill_(50.0)  # every tap displaced by (+3, +3) at most
        free.weight.copy_(square.weight)
    torch.testing.assert_close(square(x), square_deform(x, torch.full((1, 1, 20, 20), 3.0), square.weight))
    py, px = free.positions(x)
    base_y = torch.arange(20.0).view(1, 1, 20, 1)
    assert torch.equal(py - base_y, torch.full_like(py, 3.0))
    unbounded = DeformConv3x3(2, 2, square=False, rounded=True, bound=None)
    with torch.no_grad():
        unbounded.offset.bias.fill_(50.0)
        assert float((unbounded.positions(x)[0] - base_y).max()) == 51.0


def test_bilinear_member_gets_offset_gradients():
    conv = DeformConv3x3(3, 3, depthwise=True, square=False, rounded=False, bound=None)
    with torch.no_grad():
        conv.offset.bias.fill_(0.3)
    conv(torch.randn(1, 3, 6, 6)).pow(2).sum().backward()
    assert conv.offset.weight.grad.abs().sum() > 0


def test_dw_conv_and_upsample():
    x = torch.rand(2, 4, 6, 6)
    block = DWConvBNAct(4, 2, FLOAT)
    assert block(x).shape == (2, 4, 3, 3) and block(x).min() >= 0
    assert torch.equal(Upsample2x()(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    with pytest.raises(ModelConfigError, match="stride"):
        DWConvBNAct(4, 3, FLOAT)
