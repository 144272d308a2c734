"""Which accelerator the cloak uses: CUDA, then Apple's MPS, then the CPU, as the user's machine offers them.

No GPU and no Mac exist here, so the choice is checked as the pure function it is, with
availability passed in; the MPS run itself is untested until someone runs
``python -m benchmarks.bench_cloak --device mps`` on a Mac (README).
"""

from __future__ import annotations

import logging
import warnings

import pytest

from fawkes_engine.device import DeviceUnavailable, log_mps_fallbacks, onnx_providers, pick_device

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("cuda", "mps", "chosen"),
    [(True, False, "cuda"), (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(cuda: bool, mps: bool, chosen: str) -> None:
    assert pick_device("auto", cuda=cuda, mps=mps) == chosen


def test_an_explicit_device_is_kept_and_a_missing_one_is_a_clear_error() -> None:
    assert pick_device("cpu", cuda=True, mps=True) == "cpu"
    assert pick_device("mps", cuda=False, mps=True) == "mps"
    assert pick_device("cuda:1", cuda=True, mps=False) == "cuda:1"
    with pytest.raises(DeviceUnavailable, match="'mps'.*set device: auto or cpu"):
        pick_device("mps", cuda=True, mps=False)
    with pytest.raises(DeviceUnavailable, match="no CUDA GPU"):
        pick_device("cuda", cuda=False, mps=True)
    with pytest.raises(ValueError, match="not a device"):
        pick_device("metal", cuda=False, mps=True)


def test_onnx_runtime_uses_coreml_or_cuda_only_where_the_wheel_has_them() -> None:
    mac = ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("mps", mac) == ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("mps", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert onnx_providers("cuda:0", gpu) == gpu
    assert onnx_providers("cuda", mac) == ["CPUExecutionProvider"]
    assert onnx_providers("cpu", gpu) == ["CPUExecutionProvider"]


def test_an_op_without_an_mps_kernel_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """PyTorch warns for each op it runs on the CPU instead; the daemon's log says it once per op."""
    message = (
        "The operator 'aten::grid_sampler_2d_backward' is not currently supported on the MPS backend and will fall back to run on the CPU."
    )
    with warnings.catch_warnings():
        log_mps_fallbacks()
        try:
            with caplog.at_level(logging.WARNING, logger="py.warnings"):
                for _ in range(3):
                    warnings.warn(message, UserWarning, stacklevel=1)
        finally:
            logging.captureWarnings(False)
    assert sum("grid_sampler_2d_backward" in r.getMessage() for r in caplog.records) == 1


def test_the_config_accepts_exactly_these_devices(tmp_path) -> None:
    from fawkes_daemon.config import ConfigError, load_config

    (tmp_path / "src").mkdir()
    for device, ok in (("mps", True), ("auto", True), ("cuda:2", True), ("gpu", False)):
        cfg = tmp_path / f"{device.replace(':', '_')}.yaml"
        cfg.write_text(
            f"sources: [{{path: {tmp_path / 'src'}}}]\nto_share: {tmp_path / 'share'}\nstate_dir: {tmp_path / 'state'}\ndevice: '{device}'\n"
        )
        if ok:
            assert load_config(cfg).device == device
        else:
            with pytest.raises(ConfigError, match="not a device"):
                load_config(cfg)


@pytest.mark.system  # a CLI subprocess
def test_fawkes_cloak_refuses_an_accelerator_this_machine_lacks_in_one_line(tmp_path) -> None:
    """No GPU and no Mac here: `--device mps` (and `cuda`) must stop at start with one line, exit 2, no traceback."""
    import subprocess
    import sys

    from fawkes_engine.device import available

    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"not read: the device is checked first")
    cuda, mps = available()
    for device, present in (("mps", mps), ("cuda", cuda)):
        if present:
            continue
        r = subprocess.run(
            [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(photo), "--device", device],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"device '{device}'" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
