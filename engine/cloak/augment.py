"""Model augmentation: each surrogate acts like many, so that a cloak fits recognizers it never saw.

Three published techniques, each cheap and each off by default (``CloakOptions``):

- ``augment_dropout`` (DFANet): dropout on every convolution's output, a fresh mask at each
  gradient step; the cloak cannot lean on a few feature channels.
- ``augment_ghost`` (Ghost networks, layer-output erosion): every convolution's output
  channels scaled by random factors in [1 − g, 1 + g] at each gradient step: a new, slightly
  different network every step, at no training cost.
- ``augment_sgm`` (skip-gradient method): the gradient through residual branches scaled by γ < 1,
  so that more of it flows through the skip connections, whose features transfer better.
  Only networks that mark their residual blocks (``branch_grad``) take it: dlib's ResNet.

Only the optimizer's gradient steps see an augmented network; the steps that judge a face
(is it across? which step is best?) and every measurement use the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelAugmentation:
    """Forward hooks on every convolution of the surrogates; ``armed`` only during gradient steps."""

    dropout: float = 0.0
    ghost: float = 0.0
    sgm: float = 1.0
    armed: bool = False
    _handles: list = field(default_factory=list)
    _branches: list = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.dropout > 0 or self.ghost > 0 or self.sgm != 1.0

    def attach(self, modules: list[torch.nn.Module]) -> ModelAugmentation:
        if self.dropout > 0 or self.ghost > 0:
            for mod in modules:
                for m in mod.modules():
                    if isinstance(m, torch.nn.Conv2d):
                        self._handles.append(m.register_forward_hook(self._hook))
        if self.sgm != 1.0:
            for mod in modules:
                self._branches += [m for m in mod.modules() if hasattr(m, "branch_grad")]
        return self

    def arm(self, on: bool) -> None:
        self.armed = on
        for m in self._branches:
            m.branch_grad = self.sgm if on else 1.0

    def _hook(self, _m: torch.nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if not self.armed:
            return None
        n, c = out.shape[0], out.shape[1]
        scale = torch.ones(n, c, 1, 1, device=out.device, dtype=out.dtype)
        if self.ghost > 0:
            scale = scale * (1 + self.ghost * (2 * torch.rand(n, c, 1, 1, device=out.device, dtype=out.dtype) - 1))
        if self.dropout > 0:
            keep = (torch.rand(n, c, 1, 1, device=out.device) >= self.dropout).to(out.dtype)
            scale = scale * keep / (1 - self.dropout)
        return out * scale

    def remove(self) -> None:
        """The modules are shared between cloakers: never leave a hook or a scaled branch on them."""
        self.arm(False)
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._branches.clear()
