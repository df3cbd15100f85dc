"""Where tensors live and how precise the arithmetic is: CUDA with mixed precision when present, else CPU.

No stage names a device; it asks for an :class:`Accelerator`. ``device="auto"`` picks CUDA when available.
Mixed precision uses bfloat16 where the GPU supports it (no loss scaling needed) and float16 with a
gradient scaler otherwise; on CPU it is off (bfloat16 autocast on CPU is slower than float32 on most CPUs).
When ``auto`` falls back to the CPU although the machine has an NVIDIA GPU (a device node or ``nvidia-smi``
shows one), it logs a WARNING that says why CUDA is unusable (a CPU-only torch build, a driver too old for
torch's CUDA runtime, an initialisation error): a silent CPU run of a GPU job is hours lost.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accelerator:
    device: torch.device
    mixed_precision: bool
    amp_dtype: torch.dtype = torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.mixed_precision:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        # Loss scaling is needed for float16 only; a disabled scaler is a pass-through.
        enabled = self.mixed_precision and self.amp_dtype == torch.float16
        return torch.amp.GradScaler(self.device.type, enabled=enabled)

    def describe(self) -> dict[str, str]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        precision = str(self.amp_dtype).removeprefix("torch.") if self.mixed_precision else "float32"
        return {"device": self.device.type, "device_name": name, "precision": precision}


def select_accelerator(device: str = "auto", mixed_precision: bool = True) -> Accelerator:
    """``device``: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and (evidence := gpu_evidence()):
            _warn_unusable_gpu(evidence)
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available on this machine")
    if torch_device.type != "cuda" or not mixed_precision:
        return Accelerator(torch_device, mixed_precision=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Accelerator(torch_device, mixed_precision=True, amp_dtype=dtype)


def gpu_evidence() -> str | None:
    """What shows this machine has an NVIDIA GPU, whatever torch thinks: a ``/dev/nvidiaN`` device node or a
    GPU that ``nvidia-smi -L`` lists; ``None`` when nothing does."""
    if nodes := sorted(glob.glob("/dev/nvidia[0-9]*")):
        return f"{nodes[0]} exists"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    return f"nvidia-smi lists {gpus[0].strip()}" if out.returncode == 0 and gpus else None


def cuda_unusable_reason() -> str:
    """Why ``torch.cuda.is_available()`` is false here, as far as torch can tell."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU"
    if torch.version.cuda is None:
        return (
            f"this torch ({torch.__version__}) is a CPU-only build; install the CUDA build "
            "(requirements/lock-cuda.txt, or the image's TORCH_VARIANT=cuda)"
        )
    try:
        torch.cuda.init()
    except Exception as exc:  # the driver's own words: too old for this CUDA runtime, no device, ...
        return (
            f"CUDA failed to initialise: {exc} (torch {torch.__version__} is built for CUDA "
            f"{torch.version.cuda}; see docs/kubernetes.md for the driver it needs)"
        )
    return "torch.cuda.is_available() returned False"


def _warn_unusable_gpu(evidence: str) -> None:
    reason = cuda_unusable_reason()
    # A GPU hidden on purpose is no surprise; anything else is a job about to run on the CPU by mistake.
    level = logging.INFO if reason.startswith("CUDA_VISIBLE_DEVICES") else logging.WARNING
    log.log(
        level, "--device auto: a GPU is present (%s) but unusable: %s. Running on the CPU.", evidence, reason
    )
