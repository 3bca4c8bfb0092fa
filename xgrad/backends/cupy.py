"""The CuPy backend (NVIDIA GPUs). Importing this module never imports CuPy."""

from __future__ import annotations

from typing import Any

from xgrad.backends.base import RNG, Backend, BackendUnavailable


class CupyRNG(RNG):
    """CuPy's Generator: numbers are drawn on the GPU (float16 through float32)."""

    def __init__(self, backend: Backend, seed: int | None = None, device: Any = None) -> None:
        import cupy

        self.backend, self.device = backend, device
        with _on(device):
            self._gen = cupy.random.default_rng(seed)

    def normal(self, shape: tuple, dtype: Any = None, loc: float = 0.0, scale: float = 1.0) -> Any:
        import cupy

        dt = cupy.dtype(dtype or cupy.float64)
        with _on(self.device):
            x = self._gen.standard_normal(size=shape, dtype=_draw_dtype(dt))
            x = x * scale + loc if (loc, scale) != (0.0, 1.0) else x
            return x.astype(dt, copy=False)

    def uniform(self, shape: tuple, dtype: Any = None, low: float = 0.0,
                high: float = 1.0) -> Any:
        import cupy
        import numpy

        dt = cupy.dtype(dtype or cupy.float64)
        draw = _draw_dtype(dt)
        with _on(self.device):
            x = self._gen.random(size=shape, dtype=draw)
            x = x * (high - low) + low if (low, high) != (0.0, 1.0) else x
            x = x.astype(dt, copy=False)
            if draw != dt and low < high:  # rounding to the narrower dtype may reach high
                x = cupy.minimum(x, float(numpy.nextafter(dt.type(high), dt.type(low))))
            return x

    def integers(self, low: int, high: int, shape: tuple) -> Any:
        with _on(self.device):
            return self._gen.integers(low, high, size=shape)

    def permutation(self, n: int) -> Any:
        import cupy

        with _on(self.device):
            return cupy.argsort(self._gen.random(size=(n,)))


def _draw_dtype(dtype: Any) -> Any:
    """The dtype to draw in: the Generator makes only float32 and float64, so float16 is drawn
    in float32 and cast."""
    import cupy

    return cupy.dtype(cupy.float32) if dtype == cupy.float16 else dtype


def _on(device: Any) -> Any:
    import contextlib

    import cupy

    if device is None:
        return contextlib.nullcontext()
    return device if isinstance(device, cupy.cuda.Device) else cupy.cuda.Device(device)


class CupyBackend(Backend):
    name = "cupy"
    module = "cupy"
    install_hint = 'pip install "xgrad[cuda12]" (or "xgrad[cuda13]" for a CUDA 13 driver)'
    gpu = True

    def is_available(self) -> bool:
        try:
            import cupy

            return cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:
            return False

    def _load_namespace(self) -> Any:
        if not self.is_available():
            raise BackendUnavailable("backend 'cupy' needs CuPy and a CUDA GPU; none is usable "
                                     f"here. Install with {self.install_hint}")
        import array_api_compat.cupy as xp

        return xp

    def owns(self, array: Any) -> bool:
        import sys

        cupy = sys.modules.get("cupy")
        return cupy is not None and isinstance(array, cupy.ndarray)

    def owns_writable(self, array: Any) -> bool:
        return array.base is None  # CuPy arrays are writable; a view (broadcasts too) has a base

    def devices(self) -> list:
        import cupy

        return [cupy.cuda.Device(i) for i in range(cupy.cuda.runtime.getDeviceCount())]

    @property
    def default_device(self) -> Any:
        import cupy

        return cupy.cuda.Device()

    def parse_device(self, spec: Any) -> Any:
        import cupy

        if spec is None:
            return self.default_device
        if isinstance(spec, cupy.cuda.Device):
            return spec
        s = str(spec)
        idx = int(s.split(":", 1)[1]) if ":" in s else (int(s) if s.isdigit() else 0)
        n = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= idx < n:
            raise ValueError(f"no CUDA device {idx}; this machine has {n}")
        return cupy.cuda.Device(idx)

    def device_spec(self, device: Any) -> str:
        return f"cuda:{device.id}"

    def describe_devices(self) -> list[str]:
        import cupy

        out = []
        for d in self.devices():
            props = cupy.cuda.runtime.getDeviceProperties(d.id)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            out.append(f"cuda:{d.id} {name} {props['totalGlobalMem'] / 2**30:.1f} GiB")
        return out

    def rng(self, seed: int | None = None, device: Any = None) -> RNG:
        return CupyRNG(self, seed, device)

    def to_host(self, x: Any) -> Any:
        return x.get()

    def from_host(self, a: Any, device: Any = None) -> Any:
        import cupy

        with _on(device):
            return cupy.asarray(a)

    def transfer(self, x: Any, device: Any = None) -> Any:
        import cupy

        if self.owns(x):
            if device is None or x.device == device:
                return x
            with _on(device):
                return cupy.array(x, copy=True)
        return super().transfer(x, device)

    def add_at(self, x: Any, key: tuple, values: Any) -> Any:
        x[key] += values  # the caller's own array: updated in place
        return x

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        import cupy
        import cupyx

        with _on(values.device):
            out = cupy.zeros(shape, dtype=values.dtype)
            cupyx.scatter_add(out, key, values)
        return out


backend = CupyBackend()
