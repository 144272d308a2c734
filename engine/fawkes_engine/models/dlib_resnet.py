"""dlib's ResNet-29 face descriptor rebuilt in torch from the shipped ``.dat`` weights.

The topology is fixed by dlib's ``dnn_face_recognition_ex`` definition; the weights come
from :func:`fawkes_engine.models.dlib_dat.read_dlib_network`. Two dlib conventions matter for
bit-level agreement: stride-2 convolutions and pools use no padding, and a residual add
of two differently sized tensors zero-pads the smaller one (channels and space) at the
far end rather than cropping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dlib_dat import DatFormatError, DlibLayer, read_dlib_network


class _Affine(nn.Module):
    """dlib's ``affine`` layer: a frozen batch norm folded into per-channel scale and shift."""

    def __init__(self, params: np.ndarray) -> None:
        super().__init__()
        flat = params.reshape(-1).copy()
        c = flat.size // 2
        self.gamma = nn.Parameter(torch.from_numpy(flat[:c].copy()).view(1, c, 1, 1))
        self.beta = nn.Parameter(torch.from_numpy(flat[c:].copy()).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def _fold(conv: nn.Conv2d, aff: nn.Module) -> nn.Module:
    """``aff(conv(x))`` as one convolution: the affine's scale goes into the weights, its shift into the bias."""
    if not isinstance(aff, _Affine):
        return aff
    with torch.no_grad():
        g = aff.gamma.reshape(-1)
        conv.weight.mul_(g.view(-1, 1, 1, 1))
        assert conv.bias is not None  # dlib convolutions carry a bias
        conv.bias.mul_(g).add_(aff.beta.reshape(-1))
    return nn.Identity()


def _conv(layer: DlibLayer, in_channels: int) -> nn.Conv2d:
    n, kh, kw = layer.ints["num_filters"], layer.ints["nr"], layer.ints["nc"]
    stride = layer.ints["stride_y"]
    pad = layer.ints["padding_y"]
    conv = nn.Conv2d(in_channels, n, (kh, kw), stride=stride, padding=pad, bias=True)
    flat = layer.params.reshape(-1)
    nw = n * in_channels * kh * kw
    if flat.size != nw + n:
        raise DatFormatError(f"conv weights: expected {nw + n} values, found {flat.size}")
    conv.weight.data = torch.from_numpy(flat[:nw].reshape(n, in_channels, kh, kw).copy())
    assert conv.bias is not None
    conv.bias.data = torch.from_numpy(flat[nw:].copy())
    return conv


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Add two NCHW tensors, zero-padding the smaller at the far end of C, H and W (dlib ``add_prev``)."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        dc, dh, dw = c - t.shape[1], h - t.shape[2], w - t.shape[3]
        if dc or dh or dw:
            t = F.pad(t, (0, dw, 0, dh, 0, dc))
        return t

    return grow(a) + grow(b)


class _Residual(nn.Module):
    aff1: nn.Module  # an affine, or an identity once folded into its convolution
    aff2: nn.Module

    def __init__(self, conv1: nn.Conv2d, aff1: _Affine, conv2: nn.Conv2d, aff2: _Affine, down: bool) -> None:
        super().__init__()
        self.conv1, self.aff1, self.conv2, self.aff2 = conv1, aff1, conv2, aff2
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.aff1(self.conv1(x)))
        y = self.aff2(self.conv2(y))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibResNet(nn.Module):
    """Raw dlib network: input is an RGB chip in dlib's units ((pixel − channel mean) / 256)."""

    mean: torch.Tensor
    stem_aff: nn.Module

    def __init__(self, settings: dict[str, float], layers: list[DlibLayer]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([settings["avg_red"], settings["avg_green"], settings["avg_blue"]]).view(1, 3, 1, 1))
        self.chip_size = int(settings["nr"])
        it = iter(layers)

        def expect(kind: str) -> DlibLayer:
            layer = next(it)
            if layer.kind != kind:
                raise DatFormatError(f"expected {kind}, found {layer.kind}")
            return layer

        stem = expect("con_4")
        self.stem_conv = _conv(stem, 3)
        self.stem_aff = _Affine(expect("affine_").params)
        expect("relu_")
        pool = expect("max_pool_2")
        self.pool_k, self.pool_s = pool.ints["nr"], pool.ints["stride_y"]
        channels = stem.ints["num_filters"]
        units: list[_Residual] = []
        fc_layer: DlibLayer | None = None
        for layer in it:
            if layer.kind == "avg_pool_2" and layer.ints["nr"] == 0:
                fc_layer = expect("fc_2")
                break
            if layer.kind != "con_4":
                raise DatFormatError(f"expected a residual unit, found {layer.kind}")
            c1 = _conv(layer, channels)
            a1 = _Affine(expect("affine_").params)
            expect("relu_")
            l2 = expect("con_4")
            c2 = _conv(l2, l2.ints["num_filters"])
            a2 = _Affine(expect("affine_").params)
            nxt = next(it)
            down = nxt.kind == "avg_pool_2"
            if down:
                nxt = next(it)
            if nxt.kind != "add_prev_":
                raise DatFormatError(f"expected add_prev_, found {nxt.kind}")
            expect("relu_")
            units.append(_Residual(c1, a1, c2, a2, down))
            channels = l2.ints["num_filters"]
        if fc_layer is None:
            raise DatFormatError("network has no final fc layer")
        self.units = nn.ModuleList(units)
        w = fc_layer.params.reshape(fc_layer.ints["num_inputs"], fc_layer.ints["num_outputs"])
        self.fc = nn.Linear(w.shape[0], w.shape[1], bias=False)
        self.fc.weight.data = torch.from_numpy(w.T.copy())

    def fold_affines(self) -> None:
        """Fold every affine layer into the convolution before it, for a network whose weights stay frozen.

        Why: each affine is a multiply and an add over a whole activation, forward and (the
        multiply) backward — about a tenth of a cloaking step's dlib time. Training keeps them
        apart (robust fine-tuning and the end-to-end tracker learn the affines as dlib does).
        """
        self.stem_aff = _fold(self.stem_conv, self.stem_aff)
        for u in self.units:
            assert isinstance(u, _Residual)
            u.aff1 = _fold(u.conv1, u.aff1)
            u.aff2 = _fold(u.conv2, u.aff2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: N×3×150×150 RGB in [0, 255]."""
        x = (x - self.mean) / 256.0
        x = F.relu(self.stem_aff(self.stem_conv(x)))
        x = F.max_pool2d(x, self.pool_k, self.pool_s)
        for unit in self.units:
            x = unit(x)
        return self.fc(x.mean(dim=(2, 3)))


def load_dlib_resnet(path: str | Path) -> DlibResNet:
    settings, layers = read_dlib_network(path)
    return DlibResNet(settings, layers).eval()
