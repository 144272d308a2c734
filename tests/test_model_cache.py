"""D13 (issue 39): the model cache's expected digests ship with the package; a rewritten file and record do not pass."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from fawkes_engine.models import cache

pytestmark = pytest.mark.unit


def _tiny_onnx(path: Path, value: float) -> None:
    node = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [value]))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))


def test_d13_a_pinned_file_rewritten_with_its_record_is_not_trusted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAWKES_CACHE_DIR", str(tmp_path))
    name = "sface-fp32-fb143eea07838aa5.onnx"
    assert name in cache.pinned_digests()  # the builds are byte-identical: their digests ship with the code
    target = cache.cache_dir() / name
    _tiny_onnx(target, 1.0)  # an attacker's file, a valid ONNX model
    target.with_name(name + ".sha256").write_text(cache.sha256_file(target) + "\n")  # and a record that matches it
    assert cache.onnx_is_valid(target)
    assert not cache.verified(target)


def test_an_unpinned_file_still_needs_its_record(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAWKES_CACHE_DIR", str(tmp_path))
    target = cache.cache_dir() / "made-up-0123456789abcdef.onnx"
    _tiny_onnx(target, 2.0)
    assert not cache.verified(target)
    target.with_name(target.name + ".sha256").write_text(cache.sha256_file(target) + "\n")
    assert cache.verified(target)
    built = cache.build_cached("made-up", "0123456789abcdef" * 4, lambda p: _tiny_onnx(p, 3.0))
    assert built == target and cache.verified(target)  # a changed file is rebuilt only when it fails
