"""The JAX backend (CPU, GPU and TPU arrays; ``jax.numpy`` is an array-API namespace). Importing
this module never imports jax.

JAX's 64-bit types are off unless the user turns them on (``jax_enable_x64``); this backend
respects that choice: with them off it reports float64/int64 as missing (so asking for them is
an error, not a silent float32), and it never changes JAX's configuration itself."""

from __future__ import annotations

import sys
from typing import Any

from xgrad.backends import backend_of  # loaded by the registry, after it is complete
from xgrad.backends.base import RNG, Backend


class JaxRNG(RNG):
    """A JAX PRNG key, split once per draw: the same seed gives the same numbers."""

    def __init__(self, backend: Backend, seed: int | None = None, device: Any = None) -> None:
        import secrets

        import jax

        self.backend = backend
        self.device = device if device is not None else backend.default_device
        self._key = jax.random.key(secrets.randbits(31) if seed is None else seed)

    def _next(self) -> Any:
        import jax

        self._key, sub = jax.random.split(self._key)
        return sub

    def _place(self, x: Any) -> Any:
        import jax

        return jax.device_put(x, self.device)

    def _float(self, dtype: Any) -> Any:
        import jax.numpy as jnp

        return dtype or (jnp.float64 if _x64() else jnp.float32)

    def normal(self, shape: tuple, dtype: Any = None, loc: float = 0.0, scale: float = 1.0) -> Any:
        import jax

        x = jax.random.normal(self._next(), shape, dtype=self._float(dtype))
        return self._place(x * scale + loc if (loc, scale) != (0.0, 1.0) else x)

    def uniform(self, shape: tuple, dtype: Any = None, low: float = 0.0,
                high: float = 1.0) -> Any:
        import jax

        return self._place(jax.random.uniform(self._next(), shape, dtype=self._float(dtype),
                                              minval=low, maxval=high))

    def integers(self, low: int, high: int, shape: tuple) -> Any:
        import jax

        return self._place(jax.random.randint(self._next(), shape, low, high))

    def permutation(self, n: int) -> Any:
        import jax

        return self._place(jax.random.permutation(self._next(), n))


def _x64() -> bool:
    import jax

    return bool(jax.config.read("jax_enable_x64"))


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    namespace_module = "jax.numpy"
    install_hint = 'pip install jax (or pip install "xgrad[jax]")'
    checks_bounds = False  # JAX clamps out-of-bounds indices (and fills gathers with NaN)

    def owns(self, array: Any) -> bool:
        jax = sys.modules.get("jax")  # an array can only be a jax.Array if jax is imported
        return jax is not None and isinstance(array, jax.Array)

    def lacks_dtype(self, name: str) -> str:
        # 64-bit types exist only with jax_enable_x64 on (JAX's default is off)
        if name.endswith("64") and name != "complex64" and not _x64():
            return ("JAX's 64-bit types are off; jax.config.update('jax_enable_x64', True) "
                    "turns them on")
        return ""

    def devices(self) -> list:
        import jax

        out = list(jax.devices("cpu"))
        for platform in ("gpu", "tpu"):
            try:
                out += jax.devices(platform)
            except RuntimeError:  # no such platform here
                pass
        return out

    @property
    def default_device(self) -> Any:
        import jax

        return jax.devices()[0]

    def parse_device(self, spec: Any) -> Any:
        """A JAX device from None (JAX's default), ``"cpu"``, ``"gpu"``, ``"gpu:1"``
        (``"cuda:1"`` too), an int (a GPU ordinal) or a device object."""
        if spec is None:
            return self.default_device
        devs = self.devices()
        if spec in devs:
            return spec
        text = f"gpu:{spec}" if isinstance(spec, int) else str(spec)
        platform, _, index = text.partition(":")
        platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)
        same = [d for d in devs if d.platform == platform]
        if index.isdigit() and int(index) < len(same):
            return same[int(index)]
        if not index and same:
            return same[0]
        raise ValueError(f"backend 'jax' has no device {spec!r}; its devices are "
                         f"{[self.device_spec(d) for d in devs]}")

    def device_spec(self, device: Any) -> str:
        return f"jax:{device.platform}:{device.id}"

    def describe_devices(self) -> list[str]:
        return [f"{self.device_spec(d)} ({d.device_kind})" for d in self.devices()]

    def rng(self, seed: int | None = None, device: Any = None) -> RNG:
        return JaxRNG(self, seed, device)

    def to_host(self, x: Any) -> Any:
        import numpy as np

        return np.array(x)  # a writable copy (JAX's own buffer is read-only)

    def from_host(self, a: Any, device: Any = None) -> Any:
        import jax
        import numpy as np

        a = np.asarray(a)
        return jax.device_put(a, device if device is not None else self.default_device)

    def scalar(self, value: Any, dtype: Any, device: Any) -> Any:
        import jax.numpy as jnp

        return jnp.asarray(value, dtype=dtype, device=device)

    def transfer(self, x: Any, device: Any = None) -> Any:
        import jax

        if self.owns(x):
            return x if device is None or x.device == device else jax.device_put(x, device)
        if hasattr(x, "__dlpack__"):  # another library's array: through DLPack where it can
            import jax.numpy as jnp

            try:
                # a copy: JAX arrays are immutable, the source's buffer is not (and
                # from_dlpack(copy=True) still shares it in JAX 0.10 on the CPU)
                y = jnp.from_dlpack(x).copy()
            except Exception:  # a device, dtype or layout DLPack cannot carry: via the host
                y = None
            if y is not None:
                return y if device is None or y.device == device else jax.device_put(y, device)
        return self.from_host(_host(x), device)

    def masked(self, x: Any, mask: Any) -> Any:
        return x * mask  # JAX casts the bool inside the multiply: no mask-sized float copy

    def add_at(self, x: Any, key: tuple, values: Any) -> Any:
        return x.at[key].add(values)

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        import jax.numpy as jnp

        # .at[].add is a true scatter-add: repeated indices accumulate
        return jnp.zeros(shape, dtype=values.dtype, device=values.device).at[key].add(values)


def _host(x: Any) -> Any:
    """``x`` from any backend as host data."""
    return backend_of(x).to_host(x)


backend = JaxBackend()
