"""Optimizers (DeZero's shape): ``opt = Adam(lr=1e-3).setup(model)``, then after each
``loss.backward()`` call ``opt.update()``.

``update()`` takes the target's parameters that have a gradient, runs the hooks on them
(``opt.add_hook(ClipGrad(1.0))``: weight decay, gradient clipping, freezing), then updates each
one out of place on raw arrays of the parameter's own namespace (``p.data = p.data - lr * g``);
hyperparameters are read as Python floats, so float32 parameters stay float32.

Per-parameter state (momentum, moment estimates, step counts) is keyed by the Parameter object
itself. ``model.to(...)`` keeps the Parameter objects, so the state survives a move: each state
array is moved to its parameter's backend and device at the next update. ``state_dict()``
gives the hyperparameters (``hyper/lr``) and the state (``fc1.W/m``, ``fc1.W/step``) as host
NumPy arrays, keyed by parameter name when the target is a Layer (by position for a list of
parameters); ``load_state_dict()`` checks everything before it changes anything.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xgrad import backends
from xgrad._array import rearray
from xgrad.backends import Backend, backend_of
from xgrad.core import (
    GradientError,
    Parameter,
    Variable,
    _WeakIdentityDict,
    device_of,
    get_namespace,
    is_array,
    is_float_dtype,
)
from xgrad.dtypes import dtype_name
from xgrad.io import StateError, check_like, loaded_like, native, place_like, spec_of
from xgrad.nn.layer import Layer

__all__ = ["Optimizer", "SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam", "AdamW",
           "WeightDecay", "ClipGrad", "FreezeParam"]


def _fix(new: Any, like: Any) -> Any:
    """NumPy turns 0-d results into scalars; keep them arrays of ``like``'s namespace."""
    return new if type(new) is type(like) else rearray(new, like)


def _host_scalar(value: Any) -> Any:
    """A Python number as a 0-d host NumPy array."""
    return backends.get("numpy").from_host(value)


_NOTHING = " (nothing was updated)"

# Valid ranges of the hyperparameters: (lowest, highest, whether the highest is allowed).
_RANGES = {
    "lr": (0.0, math.inf, False), "momentum": (0.0, math.inf, False),
    "eps": (0.0, math.inf, False), "weight_decay": (0.0, math.inf, False),
    "beta1": (0.0, 1.0, False), "beta2": (0.0, 1.0, False), "rho": (0.0, 1.0, True),
    "rate": (0.0, math.inf, False), "max_norm": (0.0, math.inf, False),
}


def _check_hyper(owner: str, name: str, value: Any) -> float:
    """``value`` as a float within ``name``'s range; anything else is refused with an error
    naming ``owner`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    low, high, closed = _RANGES.get(name, (-math.inf, math.inf, True))
    v = float(value)
    if not (low <= v and (v <= high if closed else v < high)):
        raise ValueError(f"{owner}: {name} must be in [{low}, {high}{']' if closed else ')'}, "
                         f"got {value!r}")
    return v


class Optimizer:
    """Base class: subclasses list their hyperparameters in ``_hyper`` and pass them to
    ``super().__init__(lr=lr, ...)`` (each is checked to be a real number in its range), list
    their per-parameter arrays in ``_slots`` (``_counts_steps`` adds an integer ``step``) and
    write ``update_one(param)``."""

    _hyper: tuple[str, ...] = ("lr",)
    _slots: tuple[str, ...] = ()
    _nonneg_slots: tuple[str, ...] = ()  # running sums of squares: a negative one is corrupt
    _counts_steps = False

    def __init__(self, **hyper: Any) -> None:
        for k, v in hyper.items():  # all checked before any is set
            hyper[k] = _check_hyper(type(self).__name__, k, v)
        self.__dict__.update(hyper)
        self.target: Any = None
        self.hooks: list[Callable] = []
        self._state = _WeakIdentityDict()
        self._pending: dict[str, dict] = {}  # loaded state of parameters not created yet

    def setup(self, target: Layer | Iterable[Parameter]) -> Optimizer:
        """Optimize ``target``: a Layer (its parameters are looked up at every update, so
        lazily created ones are included) or a list of Parameters. Returns self."""
        if not isinstance(target, Layer):
            if isinstance(target, Variable) or is_array(target) \
                    or not isinstance(target, Iterable):
                raise TypeError(f"{type(self).__name__}.setup: expected a Layer or an iterable "
                                f"of Parameters, got {type(target).__name__}")
            target = list(target)
            for i, p in enumerate(target):
                if not isinstance(p, Variable):
                    raise TypeError(f"{type(self).__name__}.setup: item {i} is a "
                                    f"{type(p).__name__}, not a Parameter")
        self.target = target
        return self

    def add_hook(self, f: Callable[[list], None]) -> None:
        """Run ``f(params)`` before each update (``WeightDecay``, ``ClipGrad``, ...)."""
        self.hooks.append(f)

    def _named_params(self) -> list[tuple[str, Parameter]]:
        if self.target is None:
            raise RuntimeError(f"{type(self).__name__}: call .setup(model) first")
        if isinstance(self.target, Layer):
            return list(self.target.named_params())
        return [(str(i), p) for i, p in enumerate(self.target)]

    def update(self) -> None:
        """One step on every parameter that has a gradient (hooks first)."""
        target = self.target
        if target is None:
            raise RuntimeError(f"{type(self).__name__}: call .setup(model) first")
        ps = target.params() if isinstance(target, Layer) else target
        params = [p for p in ps if p.grad is not None]
        self._check_grads(params)
        for hook in self.hooks:
            hook(params)
        if self.hooks:  # a hook may have replaced a gradient
            self._check_grads(params)
        for p in params:
            if p.grad is not None:  # a hook (FreezeParam) may have removed it
                self.update_one(p)
        self._materialize(params)

    def _materialize(self, params: list) -> None:
        """Let a lazy backend compute the updated parameters, their state and the target's
        buffers (``Backend.materialize``), so that step n does not carry the graph of steps
        1..n; eager backends skip this."""
        lazy: dict[Backend, list] = {}
        for p in params:
            b = backend_of(p.data)
            if type(b).materialize is not Backend.materialize:
                lazy.setdefault(b, []).append(p)
        if not lazy:
            return
        buffers = [e for e in self.target.walk() if e.kind == "buffer"
                   and is_array(e.value)] if isinstance(self.target, Layer) else []
        for b, ps in lazy.items():
            slots = [(st, k) for st in (self._state.get(p) for p in ps) if st
                     for k, v in st.items() if is_array(v)]
            bufs = [e for e in buffers if backend_of(e.value) is b]
            done = b.materialize([p.data for p in ps] + [st[k] for st, k in slots]
                                 + [e.value for e in bufs])
            for p, d in zip(ps, done):
                p.data = d
            for (st, k), v in zip(slots, done[len(ps):]):
                st[k] = v
            for e, v in zip(bufs, done[len(ps) + len(slots):]):
                setattr(e.owner, e.attr, v)

    def _check_grads(self, params: list) -> None:
        """Refuse, before anything is updated, a gradient that is not a Variable of its
        parameter's shape, dtype, namespace and device (NumPy would broadcast or promote it):
        a :class:`~xgrad.GradientError`, as the engine raises for a gradient that does not
        match its Variable."""
        for p in params:
            g, d = p.grad, p.data
            if g is None:
                continue
            if not isinstance(g, Variable):
                raise GradientError(f"{self._grad_of(p)} is a {type(g).__name__}, not a "
                                    f"Variable{_NOTHING}")
            gd = g.data
            if type(gd) is not type(d) or device_of(gd) != device_of(d):
                raise GradientError(
                    f"{self._grad_of(p)} lives on {backend_of(gd).name} device "
                    f"{device_of(gd)}, the parameter on {backend_of(d).name} device "
                    f"{device_of(d)}; move the gradient with .to(...){_NOTHING}")
            if gd.dtype != d.dtype:
                raise GradientError(f"{self._grad_of(p)} has dtype {gd.dtype}, but the "
                                    f"parameter has dtype {d.dtype}; cast the gradient"
                                    f"{_NOTHING}")
            if tuple(gd.shape) != tuple(d.shape):
                raise GradientError(f"{self._grad_of(p)} has shape {tuple(gd.shape)}, but the "
                                    f"parameter has shape {tuple(d.shape)}{_NOTHING}")

    def _grad_of(self, p: Parameter) -> str:
        """"Adam.update: the gradient of parameter 'fc1.W'", for error messages."""
        name = next((n for n, q in self._named_params() if q is p), p.name)
        return f"{type(self).__name__}.update: the gradient of parameter {name!r}"

    def update_one(self, param: Parameter) -> None:
        """Update one parameter from ``param.grad``; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__}.update_one")

    # --- per-parameter state ---
    def _state_for(self, p: Parameter) -> dict:
        """``p``'s state, created on first use and moved to ``p``'s backend/device/dtype."""
        st = self._state.get(p)
        d = p.data
        if st is None:
            st = self._adopt_pending(p) if self._pending else None
            if st is None:
                xp = get_namespace(d)
                st = {s: xp.zeros_like(d) for s in self._slots}
                if self._counts_steps:
                    st["step"] = 0
            self._state[p] = st
            return st
        for k, v in st.items():
            if is_array(v) and (type(v) is not type(d) or device_of(v) != device_of(d)
                                or v.dtype != d.dtype):
                v = backend_of(d).transfer(v, device_of(d))
                st[k] = v if v.dtype == d.dtype else get_namespace(d).astype(v, d.dtype)
        return st

    def _adopt_pending(self, p: Parameter) -> dict | None:
        name = next((n for n, q in self._named_params() if q is p), None)
        loaded = self._pending.pop(name, None)
        if loaded is None:
            return None
        st = {}
        for k, a in loaded.items():
            if k == "step":
                st[k] = a
                continue
            try:
                check_like(f"{name}/{k}", spec_of(a), spec_of(p), "the parameter as created",
                           "the loaded state")
            except StateError as e:
                raise StateError(f"{type(self).__name__}: {e}") from None
            st[k] = place_like(a, p.data)
        return st

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state as host NumPy arrays, keyed
        ``hyper/<name>`` and ``<param name>/<slot>``."""
        out = {f"hyper/{k}": _host_scalar(float(getattr(self, k))) for k in self._hyper}
        states = [(name, self._state.get(p)) for name, p in self._named_params()]
        for name, st in states + list(self._pending.items()):
            for k, v in (st or {}).items():
                out[f"{name}/{k}"] = backend_of(v).to_host(v) if is_array(v) else \
                    _host_scalar(v)
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Restore ``state_dict()``'s output (arrays of any backend). Checked first: unknown
        parameters or slots, wrong shapes or dtypes, and (``strict``) missing keys raise
        :class:`~xgrad.io.StateError` and leave the optimizer unchanged."""
        self.prepare_load(state, strict)()

    def _param_entries(self) -> dict[str, Parameter | None]:
        """The target's parameters by name (None: declared lazily, not created yet)."""
        if isinstance(self.target, Layer):
            return {e.name: e.value for e in self.target.walk() if e.kind == "param"}
        return dict(self._named_params())

    def state_spec(self) -> dict[str, tuple | None]:
        """What a state file may hold: key -> (shape, dtype name or None), None where the
        parameter is not created yet; read before any data (``xgrad.io.Stateful``)."""
        out: dict[str, tuple | None] = {f"hyper/{k}": ((), None) for k in self._hyper}
        for name, p in self._param_entries().items():
            for s in self._slots:
                out[f"{name}/{s}"] = None if p is None else spec_of(p)
            if self._counts_steps:
                out[f"{name}/step"] = ((), None)
        return out

    def _check_values(self, key: str, slot: str, a: Any) -> None:
        """Loaded state must be finite (and non-negative for sums of squares): a NaN moment
        would turn every later update of its parameter into NaN."""
        xp = get_namespace(a)
        if not bool(xp.all(xp.isfinite(a))):
            raise StateError(f"key {key!r}: {type(self).__name__} state holds NaN or Inf")
        if slot in self._nonneg_slots and not bool(xp.all(a >= 0)):
            raise StateError(f"key {key!r}: {type(self).__name__} state {slot!r} is a running "
                             f"sum of squares and cannot be negative")

    def prepare_load(self, state: Mapping[str, Any], strict: bool = True,
                     prefix: str = "") -> Callable[[], None]:
        """Validate ``state`` and convert its arrays, changing nothing; return the function
        that assigns them (``xgrad.io.Stateful``)."""
        cls = type(self).__name__
        hyper: dict[str, float] = {}
        per: dict[str, dict[str, Any]] = {}
        for key, a in state.items():
            a = a.data if isinstance(a, Variable) else a
            head, sep, slot = key.rpartition("/")
            if not sep or not is_array(a):
                raise StateError(f"key {prefix + key!r}: not a {cls} state entry")
            if head == "hyper":
                if slot not in self._hyper:
                    raise StateError(f"key {prefix + key!r}: {cls} has no hyperparameter "
                                     f"{slot!r} (it has {list(self._hyper)})")
                if a.ndim != 0 or not is_float_dtype(a):
                    raise StateError(f"key {prefix + key!r}: expected a float scalar")
                try:
                    hyper[slot] = _check_hyper(cls, slot, float(backend_of(a).to_host(a)))
                except ValueError as e:
                    raise StateError(f"key {prefix + key!r}: {e}") from None
            else:
                per.setdefault(head, {})[slot] = a
        missing_h = [f"hyper/{k}" for k in self._hyper if k not in hyper]
        if strict and missing_h:
            raise StateError(f"{cls} state does not match: missing keys "
                             f"{[prefix + k for k in missing_h]}")
        entries = self._param_entries()
        wanted = set(self._slots) | ({"step"} if self._counts_steps else set())
        new_state: list = []
        pending: dict = {}
        for name, slots in per.items():
            if name not in entries:
                raise StateError(f"key {prefix + name}/...: the target has no parameter "
                                 f"named {name!r}")
            p = entries[name]
            absent = sorted(wanted - set(slots))
            if strict and absent:
                raise StateError(f"{cls} state does not match: missing keys "
                                 f"{[f'{prefix}{name}/{s}' for s in absent]}")
            st = {}
            for slot, a in slots.items():
                key = f"{prefix}{name}/{slot}"
                if slot not in wanted:
                    raise StateError(f"key {key!r}: {cls} keeps no {slot!r} state")
                if slot == "step":
                    st[slot] = _loaded_step(key, a)
                    continue
                if p is not None:
                    st[slot] = loaded_like(key, a, p.data, "the parameter")
                else:
                    st[slot] = native(backend_of(a).to_host(a))
                    if not is_float_dtype(st[slot]):
                        raise StateError(f"key {key!r}: a {cls} state needs a floating dtype, "
                                         f"got {dtype_name(a.dtype)}")
                self._check_values(key, slot, st[slot])
            shapes = {tuple(v.shape) for k, v in st.items() if k != "step"}
            if p is None and len(shapes) > 1:
                raise StateError(f"keys {prefix}{name}/...: the slots of one parameter have "
                                 f"different shapes {sorted(shapes)}")
            if p is not None:
                new_state.append((p, st))
            else:
                pending[name] = st

        def commit() -> None:
            for k, v in hyper.items():
                setattr(self, k, v)
            self._state = _WeakIdentityDict(new_state)
            self._pending = pending

        return commit


def _loaded_step(key: str, a: Any) -> int:
    """A loaded step counter: a non-negative integer scalar (Adam divides by 1 - beta**step)."""
    if a.ndim != 0 or not get_namespace(a).isdtype(a.dtype, "integral"):
        raise StateError(f"key {key!r}: expected an integer scalar, got dtype "
                         f"{dtype_name(a.dtype)} shape {tuple(a.shape)}")
    step = int(backend_of(a).to_host(a))
    if step < 0:
        raise StateError(f"key {key!r}: the step count cannot be negative, got {step}")
    return step


class SGD(Optimizer):
    """Plain gradient descent: ``p -= lr * g``."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr=lr)

    def update_one(self, param: Parameter) -> None:
        param.data = _fix(param.data - float(self.lr) * param.grad.data, param.data)


class MomentumSGD(Optimizer):
    """Gradient descent with momentum: ``v = momentum * v - lr * g; p += v``."""

    _hyper = ("lr", "momentum")
    _slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr=lr, momentum=momentum)

    def update_one(self, param: Parameter) -> None:
        st = self._state_for(param)
        d = param.data
        v = _fix(float(self.momentum) * st["v"] - float(self.lr) * param.grad.data, d)
        st["v"] = v
        param.data = _fix(d + v, d)


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g * g; p -= lr * g / (sqrt(h) + eps)``."""

    _hyper = ("lr", "eps")
    _slots = ("h",)
    _nonneg_slots = ("h",)

    def __init__(self, lr: float = 0.001, eps: float = 1e-8) -> None:
        super().__init__(lr=lr, eps=eps)

    def update_one(self, param: Parameter) -> None:
        st = self._state_for(param)
        d, g = param.data, param.grad.data
        xp = get_namespace(d)
        h = _fix(st["h"] + g * g, d)
        st["h"] = h
        param.data = _fix(d - float(self.lr) * g / (xp.sqrt(h) + float(self.eps)), d)


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012): running averages of squared gradients (``msg``) and squared
    updates (``msdx``); ``dx = sqrt((msdx + eps) / (msg + eps)) * g``."""

    _hyper = ("rho", "eps")
    _slots = ("msg", "msdx")
    _nonneg_slots = ("msg", "msdx")

    def __init__(self, rho: float = 0.95, eps: float = 1e-6) -> None:
        super().__init__(rho=rho, eps=eps)

    def update_one(self, param: Parameter) -> None:
        st = self._state_for(param)
        d, g = param.data, param.grad.data
        xp = get_namespace(d)
        rho, eps = float(self.rho), float(self.eps)
        msg = _fix(rho * st["msg"] + (1 - rho) * g * g, d)
        dx = xp.sqrt((st["msdx"] + eps) / (msg + eps)) * g
        msdx = _fix(rho * st["msdx"] + (1 - rho) * dx * dx, d)
        st["msg"], st["msdx"] = msg, msdx
        param.data = _fix(d - dx, d)


class Adam(Optimizer):
    """Adam (Kingma & Ba, Algorithm 1), with a step count per parameter:
    ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``."""

    _hyper = ("lr", "beta1", "beta2", "eps")
    _slots = ("m", "v")
    _nonneg_slots = ("v",)
    _counts_steps = True

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        super().__init__(lr=lr, beta1=beta1, beta2=beta2, eps=eps)

    def update_one(self, param: Parameter) -> None:
        st = self._state_for(param)
        d, g = param.data, param.grad.data
        xp = get_namespace(d)
        b1, b2 = float(self.beta1), float(self.beta2)
        st["step"] = t = st["step"] + 1
        m = _fix(b1 * st["m"] + (1 - b1) * g, d)
        v = _fix(b2 * st["v"] + (1 - b2) * g * g, d)
        st["m"], st["v"] = m, v
        m_hat = m * (1.0 / (1 - b1 ** t))
        v_hat = v * (1.0 / (1 - b2 ** t))
        param.data = _fix(d - float(self.lr) * m_hat / (xp.sqrt(v_hat) + float(self.eps)), d)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step."""

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = _check_hyper("AdamW", "weight_decay", weight_decay)

    def update_one(self, param: Parameter) -> None:
        d = param.data
        param.data = _fix(d * (1.0 - float(self.lr) * float(self.weight_decay)), d)
        super().update_one(param)


# ---------------------------------------------------------------------------------------------
# Hooks: called with the list of parameters that have a gradient, before the update
# ---------------------------------------------------------------------------------------------
def _set_grad(p: Parameter, g: Any) -> None:
    p.grad = Variable(_fix(g, p.grad.data), requires_grad=False)


class WeightDecay:
    """L2 regularisation: ``g += rate * p`` (out of place: a new gradient Variable)."""

    def __init__(self, rate: float) -> None:
        self.rate = _check_hyper("WeightDecay", "rate", rate)

    def __call__(self, params: list) -> None:
        rate = float(self.rate)
        for p in params:
            _set_grad(p, p.grad.data + rate * p.data)


class ClipGrad:
    """Scale all gradients by ``max_norm / norm`` when their global L2 norm (over every
    parameter together) exceeds ``max_norm``."""

    def __init__(self, max_norm: float) -> None:
        self.max_norm = _check_hyper("ClipGrad", "max_norm", max_norm)

    def __call__(self, params: list) -> None:
        sums: dict = {}  # one partial sum per (array type, device): one host sync each
        for p in params:
            g = p.grad.data
            key = (type(g), device_of(g))
            s = get_namespace(g).sum(g * g)
            sums[key] = s if key not in sums else sums[key] + s
        total = math.sqrt(sum(float(s) for s in sums.values()))
        rate = float(self.max_norm) / (total + 1e-6)
        if rate < 1.0:
            for p in params:
                _set_grad(p, p.grad.data * rate)


class FreezeParam:
    """Keep the parameters of the given Layers (or the given Parameters) fixed by dropping
    their gradients before the update."""

    def __init__(self, *layers: Layer | Parameter) -> None:
        for i, t in enumerate(layers):
            if not isinstance(t, (Layer, Variable)):
                raise TypeError(f"FreezeParam: argument {i} is a {type(t).__name__}, not a "
                                f"Layer or a Parameter")
        self.targets = layers

    def __call__(self, params: list) -> None:
        for t in self.targets:
            for p in (t.params() if isinstance(t, Layer) else (t,)):
                p.grad = None
