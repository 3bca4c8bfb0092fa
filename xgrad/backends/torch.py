"""The PyTorch backend (CPU and CUDA tensors through array-api-compat). Importing this module
never imports torch."""

from __future__ import annotations

import sys
from typing import Any

from xgrad.backends.base import RNG, Backend


class TorchRNG(RNG):
    """A ``torch.Generator`` on the target device: numbers are drawn where they will live."""

    def __init__(self, backend: Backend, seed: int | None = None, device: Any = None) -> None:
        import torch

        self.backend = backend
        self.device = device if device is not None else backend.default_device
        self._gen = torch.Generator(device=self.device)
        if seed is None:
            self._gen.seed()
        else:
            self._gen.manual_seed(seed)

    def normal(self, shape: tuple, dtype: Any = None, loc: float = 0.0, scale: float = 1.0) -> Any:
        import torch

        x = torch.randn(shape, generator=self._gen, dtype=dtype or torch.float64,
                        device=self.device)
        return x * scale + loc if (loc, scale) != (0.0, 1.0) else x

    def uniform(self, shape: tuple, dtype: Any = None, low: float = 0.0,
                high: float = 1.0) -> Any:
        import torch

        x = torch.rand(shape, generator=self._gen, dtype=dtype or torch.float64,
                       device=self.device)
        return x * (high - low) + low if (low, high) != (0.0, 1.0) else x

    def integers(self, low: int, high: int, shape: tuple) -> Any:
        import torch

        return torch.randint(low, high, shape, generator=self._gen, device=self.device)

    def permutation(self, n: int) -> Any:
        import torch

        return torch.randperm(n, generator=self._gen, device=self.device)


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    namespace_module = "array_api_compat.torch"  # torch itself lacks parts of the standard
    install_hint = 'pip install torch (or pip install "xgrad[torch]")'

    def owns(self, array: Any) -> bool:
        torch = sys.modules.get("torch")  # an array can only be a Tensor if torch is imported
        return torch is not None and isinstance(array, torch.Tensor)

    def devices(self) -> list:
        import torch

        out = [torch.device("cpu")]
        if torch.cuda.is_available():
            out += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return out

    @property
    def default_device(self) -> Any:
        import torch

        return torch.device("cpu")

    def parse_device(self, spec: Any) -> Any:
        """A ``torch.device`` from None (the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, an int
        (a CUDA ordinal) or a ``torch.device``."""
        import torch

        if spec is None:
            return self.default_device
        try:
            dev = torch.device(f"cuda:{spec}" if isinstance(spec, int) else spec)
        except (RuntimeError, TypeError):
            dev = None
        if dev is not None and dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", 0)
        if dev is None or dev not in self.devices():
            raise ValueError(f"backend 'torch' has no device {spec!r}; its devices are "
                             f"{[str(d) for d in self.devices()]}")
        return dev

    def device_spec(self, device: Any) -> str:
        return f"torch:{device}"

    def rng(self, seed: int | None = None, device: Any = None) -> RNG:
        return TorchRNG(self, seed, device)

    def to_host(self, x: Any) -> Any:
        return x.detach().cpu().numpy()

    def from_host(self, a: Any, device: Any = None) -> Any:
        import numpy as np
        import torch

        t = torch.from_numpy(np.array(a, copy=True, order="C"))  # writable, owned by torch
        return t if device is None or t.device == device else t.to(device)

    def scalar(self, value: Any, dtype: Any, device: Any) -> Any:
        import torch

        return torch.tensor(value, dtype=dtype, device=device)

    def transfer(self, x: Any, device: Any = None) -> Any:
        import torch

        if self.owns(x):
            return x if device is None or x.device == device else x.to(device)
        if hasattr(x, "__dlpack__"):  # another library's array: zero-copy where DLPack allows
            try:
                t = torch.from_dlpack(x)
            except Exception:  # a device or dtype DLPack cannot carry: through the host
                t = None
            if t is not None:
                # a copy: the source library may reuse (or forbid writing to) its buffer
                return t.to(device, copy=True) if device is not None else t.clone()
        return super().transfer(x, device)

    def masked(self, x: Any, mask: Any) -> Any:
        return x * mask  # PyTorch casts the bool inside the multiply: no mask-sized float copy

    def add_at(self, x: Any, key: tuple, values: Any) -> Any:
        if any(isinstance(k, slice) and (k.step or 1) < 0 for k in key):
            return super().add_at(x, key, values)  # torch slices have no negative step
        x[key] += values  # the caller's own tensor: updated in place
        return x

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        import torch

        n = 1
        for s in shape:
            n *= s
        # where each element of x[key] sits in x, then one accumulating index_add_
        pos = torch.arange(n, device=values.device).reshape(shape)[key].reshape(-1)
        vals = torch.broadcast_to(values, pos.shape if values.ndim == 0 else values.shape)
        out = torch.zeros(n, dtype=values.dtype, device=values.device)
        out.index_add_(0, pos, vals.reshape(-1))
        return out.reshape(shape)


backend = TorchBackend()
