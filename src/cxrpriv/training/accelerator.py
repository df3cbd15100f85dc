"""Where tensors live and how precise the arithmetic is: CUDA with mixed precision when present, else CPU.

No stage names a device; it asks for an :class:`Accelerator`. ``device="auto"`` picks CUDA when available.
Mixed precision uses bfloat16 where the GPU supports it (no loss scaling needed) and float16 with a
gradient scaler otherwise; on CPU it is off (bfloat16 autocast on CPU is slower than float32 on most CPUs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


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
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available on this machine")
    if torch_device.type != "cuda" or not mixed_precision:
        return Accelerator(torch_device, mixed_precision=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Accelerator(torch_device, mixed_precision=True, amp_dtype=dtype)
