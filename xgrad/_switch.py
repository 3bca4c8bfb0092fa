"""A reusable, re-entrant switch of a ContextVar: the shape of ``no_grad()``, ``test_mode()``
and ``use_backend()``. Imports nothing of xgrad, so the core and the backend registry share it."""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Switch"]

# Each thread and each asyncio task runs in its own contextvars.Context; the switches entered in
# it form a linked list (switch, token, rest) held in a ContextVar. A switch object keeps no state
# of its own, so one object can be entered from several threads and tasks at once, and nested.
_entered: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("xgrad.entered",
                                                                        default=None)


class Switch:
    """Set a ContextVar to a value inside a ``with`` block or a decorated function (also a
    generator function, each resume under the switch, or an async function). Reusable and
    re-entrant across threads and asyncio tasks."""

    _var: contextvars.ContextVar
    _value: Any

    def __enter__(self) -> Any:
        token = self._var.set(self._value)
        _entered.set((self, token, _entered.get()))
        return self

    def __exit__(self, *exc: Any) -> None:
        node = _entered.get()
        if node is not None and node[0] is self:  # the usual case: the innermost one
            self._var.reset(node[1])
            _entered.set(node[2])
            return
        # Exited out of order (a generator suspended inside a `with`): drop this switch's
        # newest entry and keep the others.
        kept = []
        while node is not None and node[0] is not self:
            kept.append(node[:2])
            node = node[2]
        if node is None:
            raise RuntimeError(f"{self!r} exited in a thread or task that did not enter it")
        self._var.reset(node[1])
        rest = node[2]
        for sw, token in reversed(kept):
            rest = (sw, token, rest)
        _entered.set(rest)

    def __call__(self, func: Callable) -> Callable:
        if inspect.isgeneratorfunction(func):
            return _wrap_generator(self, func)
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper


def _wrap_generator(switch: Switch, func: Callable) -> Callable:
    """A generator function whose body runs under ``switch`` at every resume, while the caller
    runs without it between resumes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = func(*args, **kwargs)
        with switch:
            try:
                value = gen.send(None)
            except StopIteration as stop:
                return stop.value
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                with switch:
                    gen.close()
                raise
            except BaseException as e:
                with switch:
                    try:
                        value = gen.throw(e)
                    except StopIteration as stop:
                        return stop.value
            else:
                with switch:
                    try:
                        value = gen.send(sent)
                    except StopIteration as stop:
                        return stop.value

    return wrapper
