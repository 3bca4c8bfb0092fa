"""Layer: a callable that owns Parameters and sub-Layers, found by attribute.

Parameters, sub-Layers and buffers (non-trainable state such as BatchNorm's running averages,
declared with ``register_buffer``) are discovered from the instance's attributes in the order
they were first assigned (a dict's insertion order), so names and order never depend on
``PYTHONHASHSEED``. Lists, tuples and dicts of Parameters or Layers are searched too; their
entries are named ``attr.0``, ``attr.key``. A Parameter or Layer reachable twice (weight tying)
is reported once, under its first name.

A layer whose sizes are only known from its first input (``Linear(10)``) declares those
parameters with ``declare_lazy``: the attribute holds None until the first call creates the
Parameter on the input's backend and device, or until ``load_state_dict`` fills it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from xgrad import backends
from xgrad.backends import backend_of
from xgrad.core import Parameter, Variable, device_of, is_array, is_float_dtype, test_mode
from xgrad.creation import _dtype_name, float32, get_rng, resolve_dtype
from xgrad.io import _MAX_BYTES, StateError

__all__ = ["Layer", "Model", "Sequential"]


def _transfer(x: Any, backend: Any, device: Any) -> Any:
    """Array ``x`` on ``backend``/``device`` (``x`` itself if it is there already)."""
    if backend.owns(x) and device_of(x) == device:
        return x
    return backend.transfer(x, device)


def _place_like(a: Any, ref: Any) -> Any:
    """A fresh copy of array ``a`` (any backend, or host NumPy) on ``ref``'s backend/device."""
    b = backend_of(ref)
    out = _transfer(a, b, device_of(ref))
    if out is a:
        out = b.namespace.asarray(a, copy=True)
    return out


def _native(a: Any) -> Any:
    """Host array ``a`` in native byte order (a big-endian file read on a little-endian
    machine holds valid values that no backend computes with as they are)."""
    dt = a.dtype
    if getattr(dt, "isnative", True):
        return a
    return a.astype(dt.newbyteorder("="))  # numpy-ok: only host arrays have a byte order


def _loaded_like(key: str, a: Any, ref: Any, owner: str) -> Any:
    """Array ``a`` read from a state file for ``key``, checked against ``ref`` (same shape and
    dtype) and copied onto ``ref``'s backend/device; ``owner`` is "the model", "the parameter"."""
    a = _native(a)
    if tuple(a.shape) != tuple(ref.shape):
        raise StateError(f"key {key!r}: shape {tuple(a.shape)} in the file, "
                         f"{tuple(ref.shape)} in {owner}")
    if _dtype_name(a.dtype) != _dtype_name(ref.dtype):
        raise StateError(f"key {key!r}: dtype {_dtype_name(a.dtype)} in the file, "
                         f"{_dtype_name(ref.dtype)} in {owner}")
    return _place_like(a, ref)


def normal_init(shape: tuple, scale: float, dtype: Any = None, place: tuple | None = None,
                name: str | None = None) -> Parameter:
    """A Parameter of samples from N(0, scale^2), drawn from the backend's generator
    (``xgrad.manual_seed`` makes them repeat) on ``place`` = (backend, device), default the
    current backend, in ``dtype`` (default float32)."""
    b, dev = place if place is not None else backends.current_target()
    data = get_rng(b, dev).normal(tuple(shape), dtype=resolve_dtype(dtype or float32, b))
    if scale != 1.0:
        data = data * float(scale)
    return Parameter(data, name=name)


def const_init(shape: tuple, value: float, dtype: Any = None, place: tuple | None = None,
               name: str | None = None) -> Parameter:
    """A Parameter filled with ``value`` on ``place`` (default: the current backend)."""
    return Parameter(const_array(shape, value, dtype, place), name=name)


def const_array(shape: tuple, value: float, dtype: Any = None, place: tuple | None = None) -> Any:
    """An array filled with ``value`` on ``place`` (default: the current backend)."""
    b, dev = place if place is not None else backends.current_target()
    dev = dev if dev is not None else b.default_device
    return b.namespace.full(tuple(shape), value, dtype=resolve_dtype(dtype or float32, b),
                            device=dev)


def fan_in_scale(fan_in: int) -> float:
    """DeZero's (and LeCun's) initial scale ``sqrt(1 / fan_in)``."""
    return math.sqrt(1.0 / fan_in)


def input_place(x: Any) -> tuple:
    """(backend, device) of a Variable's or an array's data."""
    data = x.data if isinstance(x, Variable) else x
    return backend_of(data), device_of(data)


def layer_input(layer: Layer, x: Any, ndims: str, ok: Callable[[int], bool]) -> Any:
    """The raw array of input ``x`` (a Variable or an array) whose number of dimensions
    ``ok`` accepts; anything else is refused with an error naming the layer."""
    data = x.data if isinstance(x, Variable) else x
    if not is_array(data):
        raise TypeError(f"{type(layer).__name__}: expected a Variable or an array, got "
                        f"{type(x).__module__}.{type(x).__qualname__}")
    if not ok(data.ndim):
        raise ValueError(f"{type(layer).__name__}: expected {ndims} input, got shape "
                         f"{tuple(data.shape)}")
    return data


def check_size(owner: str, what: str, v: Any, minimum: int = 1) -> int:
    """``v`` as an int >= ``minimum`` (a layer size); anything else is refused with an error
    naming ``owner`` and the argument."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{owner}: {what} must be an int >= {minimum}, got {v!r}")
    if v < minimum:
        raise ValueError(f"{owner}: {what} must be an int >= {minimum}, got {v!r}")
    return int(v)


def input_float_dtype(x: Any, dtype: Any) -> Any:
    """``dtype`` if given, else the input's dtype when it is floating, else float32."""
    if dtype is not None:
        return dtype
    data = x.data if isinstance(x, Variable) else x
    return data.dtype if is_array(data) and is_float_dtype(data) else float32


def _expand(name: str, v: Any) -> Iterator[tuple[str, Any]]:
    """(name, item) for a Parameter or Layer ``v``, or for those inside a list/tuple/dict."""
    if isinstance(v, (Parameter, Layer)):
        yield name, v
    elif isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            if isinstance(item, (Parameter, Layer)):
                yield f"{name}.{i}", item
    elif isinstance(v, dict):
        for k, item in v.items():
            if isinstance(item, (Parameter, Layer)):
                yield f"{name}.{k}", item


class _Entry:
    """One piece of state: a Parameter or buffer, possibly not created yet (value None)."""

    __slots__ = ("name", "kind", "value", "owner", "attr")

    def __init__(self, name: str, kind: str, value: Any, owner: Layer, attr: str | None) -> None:
        self.name, self.kind, self.value, self.owner, self.attr = name, kind, value, owner, attr


class Layer:
    """Base class of every layer and model: subclass it, assign Parameters and Layers as
    attributes in ``__init__``, write ``forward``; calling the layer calls ``forward``.

    ``train()`` / ``eval()`` set the mode of the layer and all its sub-layers. In eval mode
    ``__call__`` runs ``forward`` under ``xgrad.test_mode()`` (dropout off, batch norm on its
    running averages). In train mode the global switch decides, so ``with xgrad.test_mode():``
    around a call also evaluates a layer that is in train mode."""

    training = True
    _buffers: tuple[str, ...] = ()
    _lazy: tuple[str, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._lazy and any(self.__dict__.get(n) is None for n in self._lazy):
            # The first call creates parameters: a call that fails leaves the layer as it was.
            saved = dict(self.__dict__)
            try:
                return self._call(args, kwargs)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(saved)
                raise
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if self.training:
            return self.forward(*args, **kwargs)
        with test_mode():
            return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    # --- declaring state ---
    def register_buffer(self, name: str, value: Any) -> None:
        """Make attribute ``name`` a buffer: an array (or None until known) that is saved,
        loaded and moved with the parameters but not trained."""
        if value is not None and not is_array(value):
            raise TypeError(f"{type(self).__name__}.register_buffer({name!r}): expected an "
                            f"array or None, got {type(value).__name__}")
        if name not in self._buffers:
            self._buffers = (*self._buffers, name)
        setattr(self, name, value)

    def declare_lazy(self, *names: str) -> None:
        """Declare Parameters ``names`` whose shapes are known only at the first call: the
        attributes hold None until then (or until ``load_state_dict`` fills them)."""
        for name in names:
            if name not in self._lazy:
                self._lazy = (*self._lazy, name)
            setattr(self, name, None)

    # --- walking the tree ---
    def _members(self) -> Iterator[tuple[str, Any]]:
        """(name, Parameter | Layer) directly held, in attribute order, containers expanded."""
        for name, v in self.__dict__.items():
            yield from _expand(name, v)

    def _entries(self, prefix: str = "", seen: set | None = None) -> Iterator[_Entry]:
        """Every Parameter and buffer (created or lazy), depth first in attribute order."""
        seen = set() if seen is None else seen
        seen.add(id(self))
        lazy, bufs = self._lazy, self._buffers
        for attr, value in self.__dict__.items():
            if attr in bufs:
                yield _Entry(prefix + attr, "buffer", value, self, attr)
                continue
            if value is None and attr in lazy:
                yield _Entry(prefix + attr, "param", None, self, attr)
                continue
            for name, v in _expand(attr, value):
                if id(v) in seen:
                    continue
                seen.add(id(v))
                if isinstance(v, Parameter):
                    yield _Entry(prefix + name, "param", v, self, name)
                else:
                    yield from v._entries(f"{prefix}{name}.", seen)

    def named_params(self) -> Iterator[tuple[str, Parameter]]:
        """("fc1.W", Parameter) pairs in a deterministic order (attribute definition order)."""
        for e in self._entries():
            if e.kind == "param" and e.value is not None:
                yield e.name, e.value

    def params(self) -> Iterator[Parameter]:
        """Every Parameter of this layer and its sub-layers, in ``named_params`` order."""
        return iter(self._param_list(set()))

    def _param_list(self, seen: set) -> list[Parameter]:
        # named_params' walk without the names: optimizers call it at every update
        seen.add(id(self))
        out = []
        for v in self.__dict__.values():
            items = v if isinstance(v, (list, tuple)) else v.values() if isinstance(v, dict) \
                else (v,)
            for item in items:
                if id(item) in seen:
                    continue
                if isinstance(item, Parameter):
                    seen.add(id(item))
                    out.append(item)
                elif isinstance(item, Layer):
                    out += item._param_list(seen)
        return out

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """("bn.avg_mean", array) pairs of the buffers that exist."""
        for e in self._entries():
            if e.kind == "buffer" and e.value is not None:
                yield e.name, e.value

    def all_layers(self) -> Iterator[Layer]:
        """This layer and every sub-layer, each once, depth first in attribute order."""
        stack, seen = [self], {id(self)}
        while stack:
            layer = stack.pop()
            yield layer
            subs = []
            for _, v in layer._members():
                if isinstance(v, Layer) and id(v) not in seen:
                    seen.add(id(v))
                    subs.append(v)
            stack.extend(reversed(subs))

    def cleargrads(self) -> None:
        """Set the gradient of every parameter to None."""
        for p in self.params():
            p.cleargrad()

    # --- modes ---
    def train(self, mode: bool = True) -> Layer:
        """Train mode (the default) for this layer and its sub-layers; returns self."""
        for layer in self.all_layers():
            layer.training = bool(mode)
        return self

    def eval(self) -> Layer:
        """Eval mode: calls run under ``xgrad.test_mode()``; returns self."""
        return self.train(False)

    # --- moving ---
    def to(self, target: Any) -> Layer:
        """Move every parameter, gradient and buffer to ``target`` (``"cpu"``, ``"cuda:1"``,
        ``"numpy"``, ``"array_api_strict:device1"``, a Backend) in place: the Parameter
        objects stay the same, so an optimizer's state follows them (it is moved at the next
        update). Returns self."""
        b, dev = backends.resolve_target(target)
        dev = dev if dev is not None else b.default_device
        for layer in self.all_layers():
            layer._move(b, dev)
        return self

    def to_cpu(self) -> Layer:
        """``to("cpu")`` (DeZero's name)."""
        return self.to("cpu")

    def to_gpu(self, device: int = 0) -> Layer:
        """``to("cuda:<device>")`` (DeZero's name)."""
        return self.to(f"cuda:{device}")

    def _move(self, backend: Any, device: Any) -> None:
        """Move this layer's own parameters and buffers (not its sub-layers')."""
        for _, v in self._members():
            if isinstance(v, Parameter):
                v.data = _transfer(v.data, backend, device)
                if v.grad is not None:
                    v.grad = Variable(_transfer(v.grad.data, backend, device),
                                      requires_grad=False)
        for name in self._buffers:
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, _transfer(v, backend, device))

    # --- state ---
    def state_dict(self) -> dict[str, Any]:
        """Every parameter and buffer that exists, by name, as host NumPy arrays."""
        out = {}
        for e in self._entries():
            if e.value is not None:
                data = e.value.data if isinstance(e.value, Variable) else e.value
                out[e.name] = backend_of(data).to_host(data)
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Assign ``state`` (name -> array of any backend, as ``state_dict`` gives) to the
        parameters and buffers, each kept on its own backend and device. Everything is
        checked first (names, shapes, dtypes; with ``strict`` no key may be missing or
        unexpected); on a mismatch :class:`~xgrad.io.StateError` is raised and nothing
        changes. Lazy parameters not created yet are created from ``state``, on the backend
        and device of the layer's other parameters (or the current default backend)."""
        self._prepare_load(state, strict)()

    def _state_spec(self) -> dict[str, tuple | None]:
        """What a state file may hold: name -> (shape, dtype name), None for an entry not
        created yet (any shape); read before any data so that a file cannot make us inflate
        arrays the model has no room for."""
        out: dict[str, tuple | None] = {}
        for e in self._entries():
            v = e.value.data if isinstance(e.value, Variable) else e.value
            out[e.name] = None if v is None else (tuple(v.shape), _dtype_name(v.dtype))
        return out

    def _prepare_load(self, state: Mapping[str, Any], strict: bool = True,
                      prefix: str = "") -> Callable[[], None]:
        """Validate ``state`` and convert its arrays; return the function that assigns them."""
        entries = list(self._entries())
        known = {e.name: e for e in entries}
        unexpected = [k for k in state if k not in known]
        missing = [e.name for e in entries if e.value is not None and e.name not in state]
        if strict and (unexpected or missing):
            parts = []
            if missing:
                parts.append(f"missing keys {[prefix + m for m in missing][:10]}")
            if unexpected:
                parts.append(f"unexpected keys {[prefix + u for u in unexpected][:10]}")
            raise StateError(f"{type(self).__name__} state does not match: "
                             + "; ".join(parts))
        # Lazy entries of one layer are created together: all or none of them.
        lazy_owners: dict[int, list[_Entry]] = {}
        for e in entries:
            if e.value is None:
                lazy_owners.setdefault(id(e.owner), []).append(e)
        for group in lazy_owners.values():
            given = [e.name for e in group if e.name in state]
            if given and len(given) != len(group):
                absent = [prefix + e.name for e in group if e.name not in state]
                raise StateError(f"keys {absent} are missing (a not yet initialised layer "
                                 f"needs all of {[prefix + e.name for e in group]})")
        place = next((e.value for e in entries if e.value is not None), None)
        if place is not None:
            place = place.data if isinstance(place, Variable) else place
        assign = []
        for e in entries:
            if e.name not in state:
                continue
            key = prefix + e.name
            a = state[e.name]
            a = a.data if isinstance(a, Variable) else a
            if not is_array(a):
                raise StateError(f"key {key!r}: expected an array, got {type(a).__name__}")
            a = _native(a)
            if e.value is not None:
                ref = e.value.data if isinstance(e.value, Variable) else e.value
                new = _loaded_like(key, a, ref, "the model")
            else:
                if e.kind == "param" and not is_float_dtype(a):
                    raise StateError(f"key {key!r}: a parameter needs a floating dtype, got "
                                     f"{_dtype_name(a.dtype)}")
                if place is not None:
                    new = _place_like(a, place)
                else:
                    b, dev = backends.current_target()
                    new = b.namespace.asarray(_transfer(a, b, dev or b.default_device),
                                              copy=True)
            assign.append((e, new))

        def commit() -> None:
            for e, new in assign:
                if isinstance(e.value, Parameter):
                    e.value.data = new
                elif e.kind == "param":
                    setattr(e.owner, e.attr, Parameter(new, name=e.attr))
                else:
                    setattr(e.owner, e.attr, new)

        return commit

    def save_weights(self, path: str) -> None:
        """Save the parameters and buffers to ``path`` (``xgrad.io.save``; DeZero's name)."""
        from xgrad import io

        io.save(self, path)

    def load_weights(self, path: str, strict: bool = True, *,
                     max_bytes: int | None = _MAX_BYTES) -> None:
        """Load ``path`` into this layer (``xgrad.io.load_into``; DeZero's name);
        ``max_bytes`` bounds what parameters not created yet may take."""
        from xgrad import io

        io.load_into(self, path, strict=strict, max_bytes=max_bytes)

    def __repr__(self) -> str:
        n = sum(1 for _ in self.params())
        return f"{type(self).__name__}({n} parameters)"


class Model(Layer):
    """A Layer meant as the top of a network (DeZero's name); subclass it like a Layer."""

    def plot(self, *inputs: Any, path: str = "model.png") -> Any:
        """Run the model on ``inputs`` and draw the graph of its output to ``path``
        (``xgrad.viz.plot_graph``; a ``.dot`` path needs no Graphviz). Returns the path."""
        from xgrad.viz import plot_graph

        return plot_graph(self(*inputs), path, verbose=True)


class Sequential(Model):
    """Layers (or plain functions such as ``F.relu``) applied one after another; parameters
    are named ``layers.0.W``, ``layers.1.b``, ..."""

    def __init__(self, *layers: Any) -> None:
        for i, f in enumerate(layers):
            if not callable(f):
                raise TypeError(f"Sequential: item {i} is a {type(f).__name__}, not a layer or "
                                f"a function")
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for f in self.layers:
            x = f(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Any:
        return self.layers[i]
