"""Reader for dlib's binary DNN serialization (the ``.dat`` face descriptor model).

Why hand-written: the weights ship only as dlib's own archive format, and the product
must not depend on dlib at run time. The format is small: variable-length integers,
(mantissa, exponent) floats, length-prefixed strings, and tensors stored as raw
little-endian float32. Layers are written innermost (input) first, each followed by
bookkeeping we skip. Tags and skips carry no record, so the caller supplies the
topology (see :mod:`fawkes_engine.models.dlib_resnet`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatFormatError(ValueError):
    """The file is not a dlib network archive this reader understands."""


@dataclass
class DlibLayer:
    """One serialized layer: its kind and whatever numbers it carried."""

    kind: str
    ints: dict[str, int] = field(default_factory=dict)
    raw_params: np.ndarray | None = None

    @property
    def params(self) -> np.ndarray:
        """The layer's numbers; a layer that carries none is a format error where they are needed."""
        if self.raw_params is None:
            raise DatFormatError(f"{self.kind} layer has no parameters")
        return self.raw_params


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise DatFormatError("unexpected end of file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self) -> int:
        head = self.byte()
        size = head & 0x0F
        if size > 8:
            raise DatFormatError(f"bad integer header 0x{head:02x} at byte {self.pos - 1}")
        raw = self.data[self.pos : self.pos + size]
        if len(raw) != size:
            raise DatFormatError("unexpected end of file in integer")
        self.pos += size
        value = int.from_bytes(raw, "little") if size else 0
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        n = self.int()
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise DatFormatError("unexpected end of file in string")
        self.pos += n
        return raw.decode("ascii", errors="replace")

    def bool(self) -> bool:
        c = self.byte()
        if c not in (ord("0"), ord("1")):
            raise DatFormatError(f"bad bool byte 0x{c:02x} at {self.pos - 1}")
        return c == ord("1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DatFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        nbytes = 4 * count
        raw = self.data[self.pos : self.pos + nbytes]
        if len(raw) != nbytes:
            raise DatFormatError("unexpected end of file in tensor data")
        self.pos += nbytes
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()

    def alias_tensor(self) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        version = self.int()
        if version != 1:
            raise DatFormatError(f"unsupported alias_tensor version {version}")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


_KINDS = ("con_4", "affine_", "relu_", "add_prev_", "max_pool_2", "avg_pool_2", "fc_2")


def _next_layer_kind(r: _Reader) -> str:
    """Skip bookkeeping integers (e.g. the input layer's sample expansion factor) to the next layer name."""
    for _ in range(8):
        save = r.pos
        try:
            name = r.string()
        except DatFormatError:
            name = ""
        if name in _KINDS:
            return name
        r.pos = save
        r.int()
    raise DatFormatError(f"no layer record found near byte {r.pos}")


def _read_details(r: _Reader, kind: str) -> DlibLayer:
    layer = DlibLayer(kind=kind)
    if kind == "con_4":
        layer.raw_params = r.tensor()
        for key in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.ints[key] = r.int()
        r.alias_tensor()
        r.alias_tensor()
        for _ in range(4):
            r.float()
    elif kind == "affine_":
        layer.raw_params = r.tensor()
        r.alias_tensor()
        r.alias_tensor()
        layer.ints["mode"] = r.int()
    elif kind in ("relu_", "add_prev_"):
        pass
    elif kind in ("max_pool_2", "avg_pool_2"):
        for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.ints[key] = r.int()
    elif kind == "fc_2":
        layer.ints["num_outputs"] = r.int()
        layer.ints["num_inputs"] = r.int()
        layer.raw_params = r.tensor()
        r.alias_tensor()
        r.alias_tensor()
        layer.ints["bias_mode"] = r.int()
        for _ in range(4):
            r.float()
    else:
        raise DatFormatError(f"unsupported layer kind {kind!r} at byte {r.pos}")
    return layer


def read_dlib_network(path: str | Path) -> tuple[dict[str, float], list[DlibLayer]]:
    """Read a dlib ``loss_metric`` network: returns (input settings, layers input→output).

    The input settings hold the per-channel means (``avg_red`` …) and chip size.
    """
    r = _Reader(Path(path).read_bytes())
    if r.int() != 1:
        raise DatFormatError("not a dlib add_loss_layer archive")
    loss = r.string()
    if loss != "loss_metric_2":
        raise DatFormatError(f"expected loss_metric_2, found {loss!r}")
    margin, dist_thresh = r.float(), r.float()
    # Versions of every nested add_layer/tag/skip, outermost first, until the input layer.
    while True:
        save = r.pos
        head = r.data[r.pos]
        if head == 0x01 and r.data[r.pos + 1] > 2:  # a string length, i.e. the input layer name
            name = r.string()
            if name.startswith("input_"):
                break
            r.pos = save
        r.int()
    if name != "input_rgb_image_sized":
        raise DatFormatError(f"unsupported input layer {name!r}")
    settings = {
        "avg_red": r.float(),
        "avg_green": r.float(),
        "avg_blue": r.float(),
        "nr": r.int(),
        "nc": r.int(),
        "margin": margin,
        "dist_thresh": dist_thresh,
    }
    layers: list[DlibLayer] = []
    while r.pos < len(r.data):
        kind = _next_layer_kind(r)
        layers.append(_read_details(r, kind))
        for _ in range(3):
            r.bool()
        for _ in range(3):  # x_grad, cached_output, params_grad: empty in a saved model
            r.tensor()
    return settings, layers
