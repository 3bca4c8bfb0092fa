"""Recurrent layers with state carried between calls: RNN and LSTM (DeZero's layout).

Each call consumes one time step of shape (batch, in_size) and returns the new hidden state.
``reset_state()`` forgets the state (start of a new sequence); for truncated backpropagation
through time call ``h.unchain_backward()`` on the last output. Moving the layer with ``to()``
resets its state too.
"""

from __future__ import annotations

from typing import Any

from xgrad import functions as F
from xgrad.nn.checks import check_size
from xgrad.nn.layer import Layer
from xgrad.nn.layers import Linear

__all__ = ["RNN", "LSTM"]


class _Recurrent(Layer):
    def reset_state(self) -> None:
        """Forget the hidden state: the next call starts a new sequence."""
        self.h = None

    def _moved(self) -> None:
        self.reset_state()


class RNN(_Recurrent):
    """Elman RNN: ``h = tanh(x @ Wx + bx + h @ Wh)``."""

    def __init__(self, hidden_size: int, in_size: int | None = None, *,
                 dtype: Any = None) -> None:
        hidden_size = check_size("RNN", "hidden_size", hidden_size)
        eager = hidden_size if in_size is not None else None
        self.x2h = Linear(hidden_size, in_size=in_size, dtype=dtype)
        self.h2h = Linear(hidden_size, in_size=eager, nobias=True, dtype=dtype)
        self.reset_state()

    def forward(self, x: Any) -> Any:
        if self.h is None:
            h = F.tanh(self.x2h(x))
        else:
            h = F.tanh(self.x2h(x) + self.h2h(self.h))
        self.h = h
        return h


class LSTM(_Recurrent):
    """Long short-term memory: forget, input and output gates and a cell state ``c``."""

    def __init__(self, hidden_size: int, in_size: int | None = None, *,
                 dtype: Any = None) -> None:
        hidden_size = check_size("LSTM", "hidden_size", hidden_size)
        H, eager = hidden_size, (hidden_size if in_size is not None else None)
        self.x2f = Linear(H, in_size=in_size, dtype=dtype)
        self.x2i = Linear(H, in_size=in_size, dtype=dtype)
        self.x2o = Linear(H, in_size=in_size, dtype=dtype)
        self.x2u = Linear(H, in_size=in_size, dtype=dtype)
        self.h2f = Linear(H, in_size=eager, nobias=True, dtype=dtype)
        self.h2i = Linear(H, in_size=eager, nobias=True, dtype=dtype)
        self.h2o = Linear(H, in_size=eager, nobias=True, dtype=dtype)
        self.h2u = Linear(H, in_size=eager, nobias=True, dtype=dtype)
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the hidden and cell states: the next call starts a new sequence."""
        self.h = None
        self.c = None

    def forward(self, x: Any) -> Any:
        if self.h is None:
            f = F.sigmoid(self.x2f(x))
            i = F.sigmoid(self.x2i(x))
            o = F.sigmoid(self.x2o(x))
            u = F.tanh(self.x2u(x))
        else:
            f = F.sigmoid(self.x2f(x) + self.h2f(self.h))
            i = F.sigmoid(self.x2i(x) + self.h2i(self.h))
            o = F.sigmoid(self.x2o(x) + self.h2o(self.h))
            u = F.tanh(self.x2u(x) + self.h2u(self.h))
        c = i * u if self.c is None else f * self.c + i * u
        h = o * F.tanh(c)
        self.h, self.c = h, c
        return h
