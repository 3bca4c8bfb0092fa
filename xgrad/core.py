"""The engine: Variable, Parameter, Function, backward, and the config switches.

The reference algorithm (DeZero's), which the code below computes with its fast paths unrolled:

    def Function.__call__(self, *inputs):
        inputs = [as_variable(x) for x in inputs]               # step C1
        ys = self.forward(*[x.data for x in inputs])            # step C2
        outputs = [Variable(y) for y in as_tuple(ys)]           # step C3
        if Config.enable_backprop:                              # step C4: _record()
            self.generation = max(x.generation for x in inputs)
            for y in outputs:
                y.creator, y.generation = self, self.generation + 1
            self.inputs, self.outputs = inputs, [weakref.ref(y) for y in outputs]
        return outputs if len(outputs) > 1 else outputs[0]

    def Variable.backward(self):
        self.grad = ones_like(self.data)                        # step B1
        funcs = [self.creator]                                  # step B2: newest generation first
        while funcs:
            f = funcs.pop()
            gxs = f.backward(*[y().grad for y in f.outputs])    # step B3
            for x, gx in zip(f.inputs, as_tuple(gxs)):          # step B4
                x.grad = gx if x.grad is None else x.grad + gx  # out of place
                if x.creator is not None and x.creator not in funcs:
                    funcs.append(x.creator)                     # step B5

Each fast path below names the step it unrolls. Beyond the reference: inputs that need no
gradient are not recorded, scalars stay weak (the other operand's dtype), inputs must share
namespace and device, intermediate gradients are freed as the pass goes, the queue is a heap,
a gradient is checked against its input, and data reassigned since the forward is an error.
Nothing here is backend-specific: every array operation goes through the array's own namespace.
"""

from __future__ import annotations

import contextvars
import heapq
import numbers
import weakref
from collections.abc import Callable
from typing import Any

from xgrad._array import (
    NAMESPACES,
    device_of,
    get_namespace,
    is_array,
    is_float_dtype,
    lookup_namespace,
    numel,
    rearray,
)
from xgrad._switch import Switch
from xgrad.backends import backend_of
from xgrad.errors import XgradError

__all__ = [
    "Variable", "Parameter", "Function", "Config", "using_config", "no_grad", "enable_grad",
    "test_mode", "is_array", "get_namespace", "device_of", "as_variable", "XgradError",
    "BackendMismatchError", "GradientError",
]


class BackendMismatchError(XgradError, TypeError):
    """Inputs of one operation live in different array namespaces or on different devices."""


class GradientError(XgradError, ValueError):
    """A backward rule returned a gradient that does not match its input."""


# ---------------------------------------------------------------------------------------------
# Where an array lives (its namespace, dtype and device helpers are in xgrad._array)
# ---------------------------------------------------------------------------------------------
def _place(x: Any) -> str:
    b = backend_of(x)
    return f"a {b.name} array on device {b.device_spec(device_of(x))!r}"


def _check_same_place(fn: Function, xs: list) -> None:
    """Inputs of one call must share namespace and device; say how to move the data if not."""
    x0 = xs[0]
    t0, d0 = type(x0), device_of(x0)
    for i, x in enumerate(xs[1:], 1):
        if type(x) is not t0 or device_of(x) != d0:
            kind = "backends" if type(x) is not t0 else "devices"
            raise BackendMismatchError(
                f"{type(fn).__name__}: inputs live on different {kind}: input 0 is {_place(x0)}, "
                f"input {i} is {_place(x)}. Move one of them first, e.g. "
                f"`v.to({backend_of(x0).device_spec(d0)!r})` "
                f"(xgrad.asarray(..., backend=, device=) for raw arrays)."
            )


# ---------------------------------------------------------------------------------------------
# Config: one ContextVar per switch, so threads and asyncio tasks each see their own value
# ---------------------------------------------------------------------------------------------
_enable_backprop = contextvars.ContextVar("xgrad.enable_backprop", default=True)
_train = contextvars.ContextVar("xgrad.train", default=True)
_anomaly = contextvars.ContextVar("xgrad.detect_anomaly", default=False)
_SWITCHES = {"enable_backprop": _enable_backprop, "train": _train, "detect_anomaly": _anomaly}
# CPython caches a ContextVar's value for the next get() only when the current context holds it:
# a variable left at its default is looked up in the context's map on every read, which every
# Function call does twice. Set in the importing context (and copied into its tasks), the reads
# hit the cache; threads started later read the defaults, which are the same values.
for _v in _SWITCHES.values():
    _v.set(_v.get())


class _ConfigView:
    """Read-only view of the current config: ``xgrad.Config.enable_backprop``, ``.train``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return _SWITCHES[name].get()
        except KeyError:
            raise AttributeError(f"no config switch {name!r}; known: {sorted(_SWITCHES)}") from None

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v.get()!r}" for k, v in _SWITCHES.items()) + ")"


Config = _ConfigView()


class using_config(Switch):
    """Set config switch ``name`` to ``value`` inside a ``with`` block or a decorated function."""

    def __init__(self, name: str, value: Any) -> None:
        if name not in _SWITCHES:
            raise ValueError(f"unknown config switch {name!r}; known: {sorted(_SWITCHES)}")
        self._name, self._value, self._var = name, value, _SWITCHES[name]

    def __repr__(self) -> str:
        return f"using_config({self._name!r}, {self._value!r})"


def _switch(name: str, value: Any, func: Callable | None) -> Any:
    ctx = using_config(name, value)
    return ctx(func) if func is not None else ctx


def no_grad(func: Callable | None = None) -> Any:
    """Record no graph: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``."""
    return _switch("enable_backprop", False, func)


def enable_grad(func: Callable | None = None) -> Any:
    """Record the graph again inside a ``no_grad`` region."""
    return _switch("enable_backprop", True, func)


def test_mode(func: Callable | None = None) -> Any:
    """Evaluation behaviour (dropout off, batch norm on running statistics)."""
    return _switch("train", False, func)


test_mode.__test__ = False  # keep pytest from collecting it when a test module imports it


# ---------------------------------------------------------------------------------------------
# Variable
# ---------------------------------------------------------------------------------------------
class Variable:
    """A node of the graph: an array plus its gradient and the Function that created it.

    ``==``, ``<`` and the other comparisons are elementwise (a boolean Variable outside any
    graph); hashing is by identity, so Variables key dicts and sets, but ``v in a_list`` and
    ``list.index(v)`` compare elementwise: look Variables up by identity (``is``).
    """

    # _data, _grad: the slots behind the .data / .grad properties (the engine uses them
    # directly); _pgrad: the gradient a backward pass is accumulating for this Variable, cleared
    # when the pass has used it; _seeded: .grad was set by the user, not by a pass.
    __slots__ = ("_data", "name", "_grad", "creator", "generation", "requires_grad", "_pgrad",
                 "_seeded", "__weakref__")
    __array_priority__ = 200  # ndarray op Variable defers to Variable (NumPy and CuPy)
    __array_ufunc__ = None

    def __init__(self, data: Any, name: str | None = None, requires_grad: bool | None = None):
        if not is_array(data):
            raise TypeError(
                f"Variable wraps an array of an array-API namespace (numpy, cupy, ...), "
                f"not {type(data).__module__}.{type(data).__qualname__}; "
                f"use xgrad.asarray(...) to make one"
            )
        floating = is_float_dtype(data)
        if requires_grad is None:
            requires_grad = floating  # integer / bool Variables (labels, masks) hold no gradient
        elif requires_grad and not floating:
            raise TypeError(f"only floating-point Variables can require gradients, "
                            f"got {data.dtype}")
        self._data = data
        self.name = name
        self._grad: Variable | None = None
        self.creator: Function | None = None
        self.generation = 0
        self.requires_grad = requires_grad
        self._pgrad: Variable | None = None
        self._seeded = False

    @property
    def data(self) -> Any:
        """The array. Assigning a NumPy scalar (``x.data - lr * g`` on a 0-d NumPy array gives
        one) stores a 0-d array of the current data's backend; anything else that is not an
        array is a TypeError. A Function recorded before the assignment raises at backward."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        t = type(value)
        ns = NAMESPACES[t] if t in NAMESPACES else lookup_namespace(t, value)
        self._data = value if ns is not None else _coerce_data(self, value)

    @property
    def grad(self) -> Variable | None:
        """The gradient: a Variable (or None) that accumulates over backward passes. An array
        assigned here is wrapped; set before any pass, it seeds the next ``backward()``."""
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None and not isinstance(value, Variable):
            if not is_array(value):
                raise TypeError(f"Variable.grad must be a Variable, an array or None, got "
                                f"{type(value).__module__}.{type(value).__qualname__}")
            value = _new_variable(value)
        self._grad = value
        self._seeded = value is not None

    # --- array attributes ---
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return numel(self._data)

    @property
    def dtype(self) -> Any:
        return self._data.dtype

    @property
    def device(self) -> Any:
        return device_of(self._data)

    @property
    def xp(self) -> Any:
        """The array-API namespace of the data."""
        return get_namespace(self.data)

    @property
    def backend(self) -> Any:
        """The registered Backend that owns the data."""
        return backend_of(self.data)

    def __len__(self) -> int:
        if not self._data.shape:
            raise TypeError("len() of a 0-d Variable")
        return self._data.shape[0]

    def __iter__(self) -> Any:
        """The entries along the first axis, each ``self[i]`` (differentiable); a 0-d Variable
        is not iterable, as in NumPy."""
        shape = self._data.shape
        if not shape:
            raise TypeError("iteration over a 0-d Variable")
        return (self[i] for i in range(shape[0]))

    def __repr__(self) -> str:
        body = repr(self.data).replace("\n", "\n" + " " * 9)
        name = f", name={self.name!r}" if self.name else ""
        return f"variable({body}{name})"

    def __bool__(self) -> bool:
        raise TypeError("the truth value of a Variable is ambiguous; compare its .data instead")

    def __hash__(self) -> int:
        return id(self)

    # Comparisons: elementwise, not differentiable (a boolean Variable outside any graph).
    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return _compare(self, other, "equal")

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return _compare(self, other, "not_equal")

    def __lt__(self, other: Any) -> Any:
        return _compare(self, other, "less")

    def __le__(self, other: Any) -> Any:
        return _compare(self, other, "less_equal")

    def __gt__(self, other: Any) -> Any:
        return _compare(self, other, "greater")

    def __ge__(self, other: Any) -> Any:
        return _compare(self, other, "greater_equal")

    def item(self) -> Any:
        """The value of a one-element Variable as a Python scalar."""
        return backend_of(self.data).to_host(self.data).item()

    def numpy(self) -> Any:
        """The data copied to a NumPy array on the host."""
        return backend_of(self.data).to_host(self.data)

    # --- graph ---
    def cleargrad(self) -> None:
        self._grad = None

    def unchain(self) -> None:
        """Cut the link to the creator: this Variable becomes a leaf."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut every link upstream of this Variable (truncated backprop), iteratively."""
        if self.creator is None:
            return
        funcs, seen = [self.creator], {self.creator}
        while funcs:
            f = funcs.pop()
            for x in getattr(f, "inputs", ()):
                c = x.creator
                if c is not None:
                    if c not in seen:
                        seen.add(c)
                        funcs.append(c)
                    x.unchain()

    def detach(self) -> Variable:
        """A new leaf Variable sharing this data, outside any graph."""
        return _new_variable(self._data)

    def backward(self, retain_grad: bool = False, create_graph: bool = False,
                 grad: Any = None) -> None:
        """Backpropagate from this Variable, seeded with ``grad`` (an array or Variable of this
        Variable's shape, dtype and device; ones by default).

        A pass propagates only the gradients it computes. Leaves accumulate into ``.grad``
        (a second ``backward()`` adds again), each into an array of its own; with
        ``retain_grad=True`` intermediate Variables accumulate into ``.grad`` too, which a later
        pass neither propagates nor clears. A ``.grad`` set by the user before any pass (DeZero's
        ``y.grad = array(1.0); y.backward()``) is taken as the seed and consumed.

        Raises GradientError when a Variable that a recorded Function saved had its ``.data``
        reassigned since the forward (the gradient would be for values the forward never saw);
        writes into the same array (``p.data[...] = ...``) cannot be seen.
        """
        from_grad = grad is None and self._grad is not None and getattr(self, "_seeded", False)
        if from_grad:
            grad = self._grad
        handed: set = set()  # ids of arrays some .grad (or the caller) holds: never shared
        if grad is None:
            seed = _new_variable(get_namespace(self._data).ones_like(self._data))
        else:
            seed = _check_seed(self, grad)
            handed.add(id(seed._data))
            if from_grad:  # consumed: a later backward() seeds with ones
                self._grad = None
        if self.creator is None:
            _accumulate(self, seed, create_graph, handed)
            return
        self._pgrad = seed  # the pass retains it in .grad with the others when asked
        _run_backward(self.creator, retain_grad, create_graph, handed)

    # The shape helpers (reshape, transpose, T, sum, ...), .to() and the arithmetic operators
    # call the function library: xgrad.functions installs them (its _setup_variable()).


_new_object = object.__new__


def _new_variable(data: Any) -> Variable:
    """The internal fast constructor (``Variable(data)`` is the public, checked one): a
    graph-less constant around an array xgrad computed itself, which must be an array (pass a
    possibly 0-d NumPy result through ``rearray`` first). ``_seeded`` is read only when
    ``_grad`` is set, and whatever sets ``_grad`` sets it."""
    v = _new_object(Variable)
    v._data, v.name, v._grad, v.creator, v.generation, v.requires_grad, v._pgrad = \
        data, None, None, None, 0, False, None
    return v


def _coerce_data(v: Variable, value: Any) -> Any:
    """What ``v.data = value`` stores when ``value`` is not an array: a NumPy scalar becomes a
    0-d array of ``v``'s current backend and device; anything else is a TypeError."""
    if (isinstance(value, Variable) or not hasattr(value, "dtype")
            or getattr(value, "shape", None) != ()):
        hint = " (assign its .data)" if isinstance(value, Variable) else \
            "; use xgrad.asarray(...) to make one"
        raise TypeError(f"Variable.data must be an array of an array-API namespace, not "
                        f"{type(value).__module__}.{type(value).__qualname__}{hint}")
    old = v._data
    return get_namespace(old).asarray(value, device=device_of(old))


_COMPARE_TYPES = (Variable, numbers.Number)
# Stand-ins that name the operator in _to_inputs' and _check_same_place's errors.
_COMPARISONS = {op: type(n, (), {"name": n})() for op, n in (
    ("equal", "Variable.__eq__"), ("not_equal", "Variable.__ne__"), ("less", "Variable.__lt__"),
    ("less_equal", "Variable.__le__"), ("greater", "Variable.__gt__"),
    ("greater_equal", "Variable.__ge__"))}


def _compare(v: Variable, other: Any, op: str) -> Any:
    """``v <op> other`` elementwise on the data: a boolean Variable that records no graph."""
    if not isinstance(other, _COMPARE_TYPES) and not is_array(other):
        return NotImplemented
    a, b = _to_inputs(_COMPARISONS[op], (v, other))
    xs = [a._data, b._data]
    if type(xs[1]) is not type(xs[0]) or device_of(xs[1]) != device_of(xs[0]):
        _check_same_place(_COMPARISONS[op], xs)
    r = getattr(get_namespace(xs[0]), op)(xs[0], xs[1])
    return _new_variable(rearray(r, xs[0]))


def _check_seed(v: Variable, grad: Any) -> Variable:
    """The seed of ``v.backward(grad=...)`` as a Variable; it must match ``v`` exactly."""
    g = grad._data if isinstance(grad, Variable) else grad
    d = v._data
    if (not is_array(g) or type(g) is not type(d) or g.shape != d.shape or g.dtype != d.dtype
            or device_of(g) != device_of(d)):
        raise GradientError(
            f"backward: the seed gradient (grad= or a .grad set before the pass) must match the "
            f"Variable: it has {_describe([g]) if is_array(g) else type(g).__name__}, the "
            f"Variable {_describe([d])} on {v.device!r}")
    return grad if isinstance(grad, Variable) else _new_variable(g)


class _WeakIdentityDict:
    """A mapping keyed by the identity of Variables, each entry dropped when its key is
    collected. (WeakKeyDictionary and WeakSet compare keys with ``==``, which is elementwise
    on Variables.)"""

    def __init__(self, items: Any = ()) -> None:
        self._d: dict[int, tuple[weakref.ref, Any]] = {}
        for k, v in items:
            self[k] = v

    def get(self, key: Any, default: Any = None) -> Any:
        e = self._d.get(id(key))
        return e[1] if e is not None and e[0]() is key else default

    def __contains__(self, key: Any) -> bool:
        e = self._d.get(id(key))
        return e is not None and e[0]() is key

    def __getitem__(self, key: Any) -> Any:
        e = self._d.get(id(key))
        if e is None or e[0]() is not key:
            raise KeyError(f"no entry for {type(key).__name__} {getattr(key, 'name', None)!r}")
        return e[1]

    def __setitem__(self, key: Any, value: Any) -> None:
        k, d = id(key), self._d

        def drop(ref: weakref.ref) -> None:
            e = d.get(k)
            if e is not None and e[0] is ref:
                del d[k]

        d[k] = (weakref.ref(key, drop), value)

    def __len__(self) -> int:
        return sum(1 for r, _ in self._d.values() if r() is not None)

    def values(self) -> list:
        """The values of the keys still alive."""
        return [v for r, v in self._d.values() if r() is not None]


class Parameter(Variable):
    """A Variable that a Layer owns and an optimizer updates."""

    __slots__ = ()


def as_variable(obj: Any) -> Variable:
    """``obj`` if it is a Variable, else a constant Variable wrapping the array ``obj``."""
    if isinstance(obj, Variable):
        return obj
    if not is_array(obj):
        raise TypeError(f"expected a Variable or an array, got {type(obj).__name__}")
    return _new_variable(obj)


# ---------------------------------------------------------------------------------------------
# Function
# ---------------------------------------------------------------------------------------------
_SCALAR_DTYPES: dict[tuple, Any] = {}


def _scalar_dtype(value: Any, ref: Any) -> Any:
    """The dtype a weak Python scalar takes next to array ``ref`` (NEP 50 / the standard):
    the array's dtype when the kinds are compatible, else the default (None). Cached."""
    key = (type(value), id(ref.dtype))
    hit = _SCALAR_DTYPES.get(key)
    if hit is not None and hit[0] is ref.dtype:
        return hit[1]
    xp = get_namespace(ref)
    dt = ref.dtype
    if isinstance(value, bool):
        out = dt if dt == xp.bool else None
    elif isinstance(value, numbers.Integral):
        out = dt if dt != xp.bool else None
    elif isinstance(value, numbers.Real):
        out = dt if xp.isdtype(dt, ("real floating", "complex floating")) else None
    else:
        out = dt if xp.isdtype(dt, "complex floating") else None
    _SCALAR_DTYPES[key] = (dt, out)
    return out


def _to_inputs(fn: Any, inputs: tuple) -> tuple:
    """Step C1: a call's arguments as Variables: arrays become constants, scalars weak constants
    (0-d arrays of the other operand's dtype and device)."""
    ref = None
    for a in inputs:
        if isinstance(a, Variable):
            ref = a._data
            break
        if is_array(a):
            ref = a
            break
    out = []
    for i, a in enumerate(inputs):
        if isinstance(a, Variable):
            out.append(a)
        elif type(a) in (float, int) or (isinstance(a, numbers.Number) and not is_array(a)):
            if ref is None:
                raise TypeError(f"{fn.name}: needs at least one array or Variable input, "
                                f"got only Python scalars {inputs!r}")
            dtype = _scalar_dtype(a, ref)
            try:
                arr = backend_of(ref).scalar(a, dtype, device_of(ref))
            except (OverflowError, ValueError, TypeError, RuntimeError) as e:  # 1000 by int8
                # PyTorch raises RuntimeError: ValueError, as in _forward_error
                kind = OverflowError if isinstance(e, OverflowError) else \
                    ValueError if type(e) is RuntimeError else type(e)
                raise kind(f"{fn.name}: input {i}, the Python scalar {a!r}, does not fit the "
                           f"dtype {ref.dtype} of the array beside it ({e})") from e
            out.append(_new_variable(arr))
        elif is_array(a):
            out.append(_new_variable(a))
        else:
            raise TypeError(f"{fn.name}: input {i} has unsupported type "
                            f"{type(a).__module__}.{type(a).__qualname__}; expected a Variable, "
                            f"an array or a Python scalar")
    return tuple(out)


def _describe(xs: Any) -> str:
    return ", ".join(f"{tuple(x.shape)} {x.dtype}" for x in xs)


class Function:
    """A differentiable operation. Subclasses define ``forward(*arrays)`` and
    ``backward(*grad_outputs)``; calling the instance records the graph.

    ``name`` is the public name that errors raised in ``forward`` are prefixed with (the class
    name unless a subclass sets one, e.g. ``name = "permute_dims"``); forwards raise without it.
    """

    # What _record() keeps, in slots: a call whose Function holds no parameters of its own
    # (Sin, Mul, ...) allocates no per-op __dict__. _out: the weak reference to the output
    # (a tuple of them for several outputs). _xs, _ys: the arrays the forward saw, the inputs'
    # and the outputs' (each the bare array when there is one, else a tuple), checked at
    # backward against the Variables' current .data. A recorded op leaves four objects for the
    # cyclic GC to track (this Function, its output, the weak reference, the inputs' tuple).
    __slots__ = ("inputs", "_out", "generation", "_xs", "_ys", "__weakref__")
    name: str = "Function"

    @property
    def outputs(self) -> tuple:
        """Weak references to the outputs, as a tuple (call one to get its Variable, or None
        once it is gone). A one-output Function keeps the bare reference in ``_out`` (one
        object fewer per op for the cyclic GC to track); rules read their output as
        ``self._out()``."""
        o = self._out
        return o if type(o) is tuple else (o,)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __call__(self, *inputs: Any) -> Any:
        # The reference's steps C1-C4, with one- and two-input calls unrolled: this method is
        # the engine's per-op cost. A one-input call keeps its array bare in _xs (no tuple).
        for a in inputs:  # C1, only when some argument is not a Variable yet
            if not isinstance(a, Variable):
                inputs = _to_inputs(self, inputs)
                break
        x0 = inputs[0]._data
        n = len(inputs)
        if n == 1:
            xs = x0
        elif n == 2:  # C1 continued: both inputs in one namespace, on one device
            x1 = inputs[1]._data
            xs = (x0, x1)
            try:
                same = type(x1) is type(x0) and x1.device == x0.device
            except AttributeError:  # no .device attribute (dask): the slow path checks
                same = False
            if not same:
                _check_same_place(self, xs)
        else:
            xs = tuple([v._data for v in inputs])
            _check_same_place(self, xs)
        try:  # C2, one and two inputs passed directly (no tuple unpacking)
            ys = self.forward(x0) if n == 1 else self.forward(x0, x1) if n == 2 else \
                self.forward(*xs)
        except (TypeError, ValueError, IndexError, RuntimeError) as e:
            raise _forward_error(self, xs if n != 1 else (x0,), e) from e
        if type(ys) is not tuple and type(ys) is not type(x0):
            ys = rearray(ys, x0)  # a NumPy scalar from a 0-d result, or another backend's array
        if _enable_backprop.get():
            # C4's generation, over the inputs that need a gradient (-1: none does)
            v = inputs[0]
            gen = v.generation if v.requires_grad else -1
            if n > 1:
                v = inputs[1]
                if v.requires_grad and v.generation > gen:
                    gen = v.generation
                if n > 2:
                    for v in inputs:
                        if v.requires_grad and v.generation > gen:
                            gen = v.generation
            if gen >= 0:
                return _record(self, inputs, xs, ys, gen)
        if type(ys) is not tuple:  # C3 for one output, unrecorded (_new_variable, inlined)
            y = _new_object(Variable)
            y._data = ys
            y.name = y._grad = y.creator = y._pgrad = None
            y.generation = 0
            y.requires_grad = False
            return y
        return [_new_variable(y if type(y) is type(x0) else rearray(y, x0)) for y in ys]

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *gys: Variable) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


_weakref = weakref.ref


def _record(fn: Function, inputs: tuple, xs: tuple, ys: Any, gen: int) -> Any:
    """Steps C3 and C4: the outputs ``ys`` (one array, or a tuple of them) as Variables created
    by ``fn``, which keeps its inputs, the arrays it saw and weak references to its outputs.
    Every recorded call goes through here."""
    fn.generation = gen
    fn.inputs, fn._xs = inputs, xs
    if type(ys) is not tuple:  # one output: the Variable is built in place (the hot path)
        y = _new_object(Variable)
        y._data, y.name, y._grad, y.creator, y.generation, y.requires_grad, y._pgrad = \
            ys, None, None, fn, gen + 1, True, None
        fn._ys, fn._out = ys, _weakref(y)
        out: Any = y
    else:
        x0 = xs[0] if type(xs) is tuple else xs
        out = [_new_variable(y if type(y) is type(x0) else rearray(y, x0)) for y in ys]
        for y in out:
            y.creator, y.generation, y.requires_grad = fn, gen + 1, True
        # One output is kept bare, as on the one-output path: backward checks it so.
        fn._ys = tuple(y._data for y in out) if len(out) != 1 else out[0]._data
        fn._out = tuple(_weakref(y) for y in out)
    if _anomaly.get():
        from xgrad.anomaly import record_origin  # lazy: anomaly builds on this module

        record_origin(fn)
    return out


def _forward_error(fn: Function, xs: tuple, e: Exception) -> Exception:
    """An error from a forward, prefixed with the Function's public name and followed by its
    inputs' shapes and dtypes (forwards raise without the name)."""
    msg = f"{fn.name}: {e} (inputs: {_describe(xs)})"
    if type(e) is RuntimeError or (type(e) is TypeError and "incompatible shapes" in str(e)):
        # PyTorch's (and some of JAX's) errors for shapes that do not fit: ValueError, as NumPy
        return ValueError(msg)
    if type(e) is NotImplementedError:  # PyTorch: a kernel missing for this dtype
        return TypeError(msg)
    try:
        return type(e)(msg)
    except Exception:  # an exception type whose constructor takes other arguments
        return ValueError(msg) if isinstance(e, ValueError) else TypeError(msg)


# ---------------------------------------------------------------------------------------------
# The backward pass: a heap of Functions keyed by generation (newest first), each run once
# ---------------------------------------------------------------------------------------------
def _run_backward(start: Function, retain_grad: bool, create_graph: bool, handed: set) -> None:
    # The caller has put the seed in start's output's _pgrad. Non-leaf Variables collect this
    # pass's gradient in _pgrad, which their creator consumes; leaves (and, with retain_grad,
    # the outputs processed) accumulate into .grad, which a pass never reads back.
    # B2: the pending Functions, newest generation first, then first queued. While only one is
    # pending (a chain), it waits in `nxt` and the heap is never touched; else the heap holds
    # int keys (generation and tie counter folded into one int: no tuple per entry) of
    # `pending`'s Functions.
    nxt: Function | None = start
    heap: list[int] = []
    pending: dict[int, Function] = {}
    queued = {start}
    tie = 0
    anomaly = _anomaly.get()
    pop, push = heapq.heappop, heapq.heappush
    # Record the backward pass itself only for higher-order gradients.
    token = _enable_backprop.set(create_graph)
    try:
        while True:
            if nxt is not None:
                f, nxt = nxt, None
            elif heap:
                f = pending.pop(pop(heap))
            else:
                break
            refs = f._out
            inputs = f.inputs
            xs = f._xs
            if type(refs) is not tuple:  # B3 for one output
                y = refs()
                gy = y._pgrad
                y._pgrad = None
                # Stale data: an input's or the output's .data reassigned since the forward
                # (xs: one input's array bare, else a tuple).
                if y._data is not f._ys or (inputs[0]._data is not xs if type(xs) is not tuple
                                            else inputs[0]._data is not xs[0] or len(xs) != 2
                                            or inputs[1]._data is not xs[1]):
                    _check_saved(f, [y])
                if retain_grad:
                    _accumulate(y, gy, create_graph, handed)
                gxs = f.backward(gy)
            else:
                outputs = [r() for r in refs]
                gys = []
                for y in outputs:
                    g = None
                    if y is not None:
                        g, y._pgrad = y._pgrad, None
                        if retain_grad and g is not None:
                            _accumulate(y, g, create_graph, handed)
                    gys.append(g)
                if all(g is None for g in gys):
                    continue
                _check_saved(f, outputs)
                gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):  # B3: the rule's gradients, one per input
                gxs = (gxs,)
            if anomaly:
                from xgrad.anomaly import check_gradients  # lazy: anomaly builds on this module

                check_gradients(f, gxs)
            if len(gxs) != len(inputs):
                raise GradientError(f"{type(f).__name__}.backward returned {len(gxs)} "
                                    f"gradients for {len(inputs)} inputs")
            for x, gx in zip(inputs, gxs):  # B4, checked against the input
                if gx is None or not x.requires_grad:
                    continue
                if not isinstance(gx, Variable):
                    gx = as_variable(gx)
                xd, gd = x._data, gx._data
                if gd.shape != xd.shape or (gd.dtype is not xd.dtype and gd.dtype != xd.dtype):
                    gx = _cast_promoted(f, x, gx)
                    gd = gx._data
                c = x.creator
                if c is None:  # a leaf
                    _accumulate(x, gx, create_graph, handed)
                    continue
                g = x._pgrad
                if g is None:
                    x._pgrad = gx
                elif create_graph:
                    x._pgrad = g + gx  # out of place: g may be another Variable's gradient too
                else:
                    s = g._data + gd
                    if type(s) is not type(gd):
                        s = rearray(s, gd)
                    x._pgrad = _new_variable(s)
                if c not in queued:  # B5: each Function queued once
                    queued.add(c)
                    if nxt is None and not heap:
                        nxt = c
                        continue
                    if nxt is not None:
                        tie += 1
                        k = tie - (nxt.generation << 40)
                        pending[k] = nxt
                        push(heap, k)
                        nxt = None
                    tie += 1
                    k = tie - (c.generation << 40)
                    pending[k] = c
                    push(heap, k)
    except BaseException:
        # Leave no gradient of this failed pass behind for the next one to add to.
        for g in [*pending.values(), *([nxt] if nxt is not None else [])]:
            for r in g.outputs:
                y = r()
                if y is not None:
                    y._pgrad = None
        raise
    finally:
        _enable_backprop.reset(token)


def _check_saved(f: Function, outputs: list) -> None:
    """Raise if a Variable that ``f`` saved at forward holds another array now: its backward
    would compute the gradient at the new values. Only reassignment (``v.data = ...``) is
    seen; a write into the same array (``v.data[...] = ...``, ``p.data -= ...`` on NumPy)
    keeps its identity and goes unnoticed."""
    ys = f._ys if len(f.outputs) != 1 else (f._ys,)
    xs = f._xs if type(f._xs) is tuple else (f._xs,)
    pairs = [("input", i, v, a) for i, (v, a) in enumerate(zip(f.inputs, xs))]
    pairs += [("output", i, v, a) for i, (v, a) in enumerate(zip(outputs, ys)) if v is not None]
    for kind, i, v, a in pairs:
        if v._data is not a:
            name = f" {v.name!r}" if v.name else ""
            raise GradientError(
                f"{type(f).__name__}: {kind} {i} ({type(v).__name__}{name}, "
                f"{_describe([v._data])}) had its .data reassigned after the forward pass that "
                f"recorded {type(f).__name__}, so its backward would use values the forward never "
                f"saw. Run backward before changing .data (e.g. before an optimizer step), or run "
                f"the forward again.")


_OWNS_WRITABLE: dict[type, Callable] = {}


def _accumulate(v: Variable, g: Variable, create_graph: bool, handed: set) -> None:
    """Add ``g`` to ``v.grad``. A new .grad gets an array of its own, writable: copied when the
    array is also held elsewhere in this pass (``a + b`` hands one gradient to both) or the
    backend cannot say that it owns writable memory (a broadcast view from ``sum``). Under
    create_graph the .grad is a node of the gradient's graph: copied (by a recorded, identity-
    gradient node) only when shared, so its array may be a read-only view."""
    old = v._grad
    if old is None:
        d = g._data
        t = type(d)
        owns = _OWNS_WRITABLE.get(t)
        if owns is None:
            owns = _OWNS_WRITABLE[t] = backend_of(d).owns_writable
        if id(d) in handed or (not create_graph and not owns(d)):
            g = _Copy()(g)  # recorded under create_graph: the copy stays differentiable
        handed.add(id(g._data))
        v._grad = g
    elif create_graph:
        v._grad = old + g  # out of place: recorded for higher-order gradients
    else:
        gd = g._data
        s = old._data + gd
        if type(s) is not type(gd):
            s = rearray(s, gd)
        v._grad = _new_variable(s)
    v._seeded = False


class _Copy(Function):
    """A copy of the array that owns writable memory; gradient: the identity."""

    def forward(self, x: Any) -> Any:
        return get_namespace(x).asarray(x, copy=True)

    def backward(self, gy: Variable) -> Variable:
        return gy


def _cast_promoted(f: Function, x: Variable, gx: Variable) -> Variable:
    """A gradient that does not match its input is an error, except one case: a Function whose
    inputs mixed dtypes (float32 with float64, or with an integer array) computed in the
    promoted dtype, and each float input's gradient is cast back to that input's dtype (as
    NumPy's promotion and PyTorch do)."""
    xd, gd = x._data, gx._data
    mixed = any(v is not x and v.dtype != xd.dtype for v in f.inputs)
    if gd.shape == xd.shape and mixed and is_float_dtype(xd) and is_float_dtype(gd):
        return gx.astype(xd.dtype)  # installed by xgrad.functions
    i = next(i for i, v in enumerate(f.inputs) if v is x)
    raise GradientError(
        f"{type(f).__name__}.backward returned a gradient of shape {tuple(gd.shape)} and dtype "
        f"{gd.dtype} for input {i}, which has shape {tuple(xd.shape)} and dtype {xd.dtype}")
