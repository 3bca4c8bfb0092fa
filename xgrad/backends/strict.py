"""array_api_strict: the standard and nothing more, with fake devices. Used by the tests so
that any NumPy-ism in a kernel fails loudly; it uses the portable defaults of Backend and only
array_api_strict's public API."""

from __future__ import annotations

import sys
from typing import Any

from xgrad.backends.base import Backend


class StrictBackend(Backend):
    name = "array_api_strict"
    module = "array_api_strict"
    install_hint = 'pip install array-api-strict (or pip install "xgrad[test]")'

    def __init__(self) -> None:
        super().__init__()
        self._array_type: type | None = None

    def owns(self, array: Any) -> bool:
        if self._array_type is None:
            if "array_api_strict" not in sys.modules:  # none of its arrays can exist yet
                return False
            self._array_type = type(self.namespace.asarray(0))
        return isinstance(array, self._array_type)

    def to_host(self, x: Any) -> Any:
        # NumPy reads arrays on the CPU device only: move there first.
        import numpy as np

        xp = self.namespace
        cpu = xp.__array_namespace_info__().default_device()
        if x.device != cpu:
            x = xp.asarray(x, device=cpu, copy=True)
        return np.asarray(x).copy()

    def from_host(self, a: Any, device: Any = None) -> Any:
        import numpy as np

        a = np.asarray(a)
        xp = self.namespace
        if device is not None and a.dtype.name not in \
                xp.__array_namespace_info__().dtypes(device=device):
            a = a.astype(np.float32 if a.dtype.kind == "f" else np.int32)
        return xp.asarray(a, device=device)


backend = StrictBackend()
