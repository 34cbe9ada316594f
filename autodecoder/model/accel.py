"""Speed options of ``specs.json`` resolved for a device (bf16 autocast, TF32 matmuls, torch.compile;
all off by default), and the CPU thread discipline of the worker threads."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from autodecoder.model.forward import forward_points


@dataclass
class Accel:
    """The speed options of the specs, resolved for one device.

    Attributes:
        autocast: a factory of the bf16 autocast context (``Bf16Autocast``), or None.
        forward: :func:`~autodecoder.model.forward.forward_points` compiled with ``torch.compile``
            (``Compile``), or None.
        tf32: whether TF32 matmuls were switched on (``TF32Matmul``, CUDA only).
    """

    autocast: Callable[[], Any] | None = None
    forward: Callable[..., torch.Tensor] | None = None
    tf32: bool = False

    @classmethod
    def from_specs(cls, specs: dict, device: torch.device | str) -> "Accel":
        device = torch.device(device)
        autocast = None
        if specs["Bf16Autocast"]:
            autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)  # noqa: E731
        tf32 = False
        if specs["TF32Matmul"] and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            tf32 = True
        comp = specs["Compile"]
        forward = compiled_forward("inductor" if comp is True else comp) if comp else None
        return cls(autocast, forward, tf32)

    def context(self) -> contextlib.AbstractContextManager:
        """The autocast context, or a no-op one."""
        return self.autocast() if self.autocast is not None else contextlib.nullcontext()

    def describe(self) -> str:
        on = [name for name, flag in (("bf16 autocast", self.autocast), ("TF32", self.tf32),
                                      ("torch.compile", self.forward)) if flag]
        return ", ".join(on) if on else "fp32"


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_forward(backend: str = "inductor") -> Callable[..., torch.Tensor]:
    """:func:`~autodecoder.model.forward.forward_points` through ``torch.compile`` (once per process and backend)."""
    if backend not in _COMPILED:
        _COMPILED[backend] = torch.compile(forward_points, backend=backend, dynamic=True)
    return _COMPILED[backend]


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def single_thread_ops() -> Iterator[None]:
    """Run torch operations on one intra-op thread each: worker threads supply the parallelism."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            torch.set_num_threads(before)


def worker_threads(device: torch.device, threads: int | None) -> int:
    """Worker threads for chunks on ``device``: ``threads``, or torch's thread count on the CPU, 1 on a GPU."""
    if threads is None:
        threads = torch.get_num_threads() if device.type == "cpu" else 1
    return max(1, int(threads))
