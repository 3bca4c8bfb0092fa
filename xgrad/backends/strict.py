"""array_api_strict: the standard and nothing more, with fake devices. Used by the tests so
that any NumPy-ism in a kernel fails loudly; it uses the portable defaults of Backend."""

from __future__ import annotations

from typing import Any

from xgrad.backends.base import Backend


class StrictBackend(Backend):
    name = "array_api_strict"
    module = "array_api_strict"
    install_hint = 'pip install array-api-strict (or pip install "xgrad[test]")'

    def owns(self, array: Any) -> bool:
        import array_api_strict

        return isinstance(array, array_api_strict._array_object.Array)

    def to_host(self, x: Any) -> Any:
        # The array API's buffer-protocol-free path: move to the CPU device, then read it.
        import array_api_strict as xp
        import numpy as np

        cpu = xp.asarray(x, device=xp.Device("CPU_DEVICE"), copy=True) \
            if x.device != xp.Device("CPU_DEVICE") else x
        return np.asarray(cpu._array).copy()

    def from_host(self, a: Any, device: Any = None) -> Any:
        import numpy as np

        a = np.asarray(a)
        xp = self.namespace
        if device is not None and not _supports(device, a.dtype):
            a = a.astype(np.float32 if a.dtype.kind == "f" else np.int32)
        return xp.asarray(a, device=device)


def _supports(device: Any, dtype: Any) -> bool:
    import array_api_strict as xp
    from array_api_strict._devices import device_supports_dtype

    return device_supports_dtype(device, getattr(xp, str(dtype), None))


backend = StrictBackend()
