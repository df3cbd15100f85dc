from __future__ import annotations

import logging

import pytest
import torch

from cxrpriv.training import accelerator
from cxrpriv.training.accelerator import select_accelerator
from cxrpriv.training.seeding import epoch_rng, stream_seed


def test_auto_picks_cpu_without_cuda_and_disables_mixed_precision() -> None:
    acc = select_accelerator("auto")
    if torch.cuda.is_available():
        pytest.skip("this test is about machines without CUDA")
    assert acc.device.type == "cpu"
    assert not acc.mixed_precision
    assert not acc.grad_scaler().is_enabled()
    assert acc.describe()["precision"] == "float32"


def test_asking_for_cuda_without_it_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_accelerator("cuda")


@pytest.fixture
def gpu_but_no_cuda(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A machine with an NVIDIA device node on which torch finds no usable CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accelerator.glob, "glob", lambda pattern: ["/dev/nvidia0"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


def test_auto_warns_when_a_gpu_is_present_but_torch_is_a_cpu_build(gpu_but_no_cuda, caplog) -> None:
    gpu_but_no_cuda.setattr(torch.version, "cuda", None)
    with caplog.at_level(logging.INFO, logger="cxrpriv.training.accelerator"):
        assert select_accelerator("auto").device.type == "cpu"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "/dev/nvidia0 exists" in record.message and "CPU-only build" in record.message


def test_auto_warns_with_the_cuda_initialisation_error(gpu_but_no_cuda, caplog) -> None:
    def too_old() -> None:
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12020)")

    gpu_but_no_cuda.setattr(torch.version, "cuda", "13.0")
    gpu_but_no_cuda.setattr(torch.cuda, "init", too_old)
    with caplog.at_level(logging.WARNING, logger="cxrpriv.training.accelerator"):
        select_accelerator("auto")
    (record,) = caplog.records
    assert "driver on your system is too old" in record.message and "CUDA 13.0" in record.message


def test_a_gpu_hidden_on_purpose_is_only_noted(gpu_but_no_cuda, caplog) -> None:
    gpu_but_no_cuda.setenv("CUDA_VISIBLE_DEVICES", "")
    with caplog.at_level(logging.INFO, logger="cxrpriv.training.accelerator"):
        select_accelerator("auto")
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_no_warning_without_any_sign_of_a_gpu(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accelerator.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(accelerator.shutil, "which", lambda name: None)
    with caplog.at_level(logging.INFO, logger="cxrpriv.training.accelerator"):
        select_accelerator("auto")
    assert not caplog.records


@pytest.mark.gpu
def test_cuda_uses_mixed_precision() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    acc = select_accelerator("auto")
    assert acc.device.type == "cuda" and acc.mixed_precision
    with acc.autocast():
        out = torch.nn.Linear(4, 4).cuda()(torch.ones(2, 4, device="cuda"))
    assert out.dtype == acc.amp_dtype


def test_streams_are_reproducible_and_independent() -> None:
    assert stream_seed(1, 2, "pairs") == stream_seed(1, 2, "pairs")
    assert len({stream_seed(1, 2, "pairs"), stream_seed(1, 3, "pairs"), stream_seed(1, 2, "shuffle")}) == 3
    assert 0 <= stream_seed(2**40, 1, "x") < 2**63
    assert (epoch_rng(5, 1, "a").random(3) == epoch_rng(5, 1, "a").random(3)).all()
