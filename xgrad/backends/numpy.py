"""The NumPy backend (CPU)."""

from __future__ import annotations

from typing import Any

from xgrad.backends.base import RNG, Backend


def _draw_dtype(dtype: Any) -> Any:
    """The dtype to draw in: the Generator makes only float32 and float64, so float16 is drawn
    in float32 and cast."""
    import numpy as np

    dt = np.dtype(dtype or np.float64)
    return np.dtype(np.float32) if dt == np.float16 else dt


class NumpyRNG(RNG):
    """NumPy's Generator, drawing directly in the requested dtype (float16 through float32)."""

    def normal(self, shape: tuple, dtype: Any = None, loc: float = 0.0, scale: float = 1.0) -> Any:
        import numpy as np

        dt = np.dtype(dtype or np.float64)
        x = self._gen.standard_normal(size=shape, dtype=_draw_dtype(dt))
        if scale != 1.0:
            x *= scale
        if loc != 0.0:
            x += loc
        return x.astype(dt, copy=False)

    def uniform(self, shape: tuple, dtype: Any = None, low: float = 0.0,
                high: float = 1.0) -> Any:
        import numpy as np

        dt = np.dtype(dtype or np.float64)
        draw = _draw_dtype(dt)
        x = self._gen.random(size=shape, dtype=draw)
        if (low, high) != (0.0, 1.0):
            x = x * (high - low) + low
        x = x.astype(dt, copy=False)
        if draw != dt and low < high:  # rounding to the narrower dtype may reach high
            x = np.minimum(x, np.nextafter(dt.type(high), dt.type(low)))
        return x


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    namespace_module = "array_api_compat.numpy"
    install_hint = 'pip install "numpy>=2"'

    def owns(self, array: Any) -> bool:
        import numpy as np

        return isinstance(array, np.ndarray)

    def owns_writable(self, array: Any) -> bool:
        flags = array.flags  # a view (base set) may share memory; broadcasts are read-only
        return flags.owndata and flags.writeable

    def devices(self) -> list:
        return ["cpu"]

    @property
    def default_device(self) -> Any:
        return "cpu"

    def device_spec(self, device: Any) -> str:
        return "cpu"

    def scalar(self, value: Any, dtype: Any, device: Any) -> Any:
        import numpy as np

        return np.asarray(value, dtype=dtype)

    def rng(self, seed: int | None = None, device: Any = None) -> RNG:
        return NumpyRNG(self, seed, device)

    def to_host(self, x: Any) -> Any:
        return x

    def from_host(self, a: Any, device: Any = None) -> Any:
        import numpy as np

        return np.asarray(a)

    def masked(self, x: Any, mask: Any) -> Any:
        return x * mask  # NumPy casts the bool inside the multiply: no mask-sized float copy

    def add_at(self, x: Any, key: tuple, values: Any) -> Any:
        x[key] += values  # the caller's own array: updated in place
        return x

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        import numpy as np

        out = np.zeros(shape, dtype=values.dtype)
        np.add.at(out, key, values)
        return out


backend = NumpyBackend()
