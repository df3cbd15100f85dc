from __future__ import annotations

import pytest
import torch

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
