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

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from xgrad import backends
from xgrad.backends import backend_of
from xgrad.core import Parameter, Variable, is_array, is_float_dtype, test_mode
from xgrad.dtypes import dtype_name
from xgrad.io import (
    MAX_BYTES,
    StateError,
    load_into,
    loaded_like,
    native,
    place_like,
    save,
    spec_of,
)
from xgrad.viz import plot_graph

__all__ = ["Layer", "Model", "Sequential", "Entry"]


def _expand(name: str, v: list | tuple | dict) -> Iterator[tuple[str, Any]]:
    """(name, item) for the Parameters and Layers inside a list/tuple/dict."""
    if isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            if isinstance(item, (Parameter, Layer)):
                yield f"{name}.{i}", item
    elif isinstance(v, dict):
        for k, item in v.items():
            if isinstance(item, (Parameter, Layer)):
                yield f"{name}.{k}", item


class Entry(NamedTuple):
    """One node of a layer tree as :meth:`Layer.walk` gives it: its dotted ``name`` ("fc1.W";
    "" for the root); ``kind`` "layer", "param" or "buffer"; its ``value`` (None: a lazy
    parameter or a buffer not created yet); and where it is held: ``owner``'s ``attr``
    ("blocks.0" for an item of a list)."""

    name: str
    kind: str
    value: Any
    owner: Any
    attr: str | None

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.kind!r})"


# Entry(...) runs a Python-level __new__; tuple's own is ~5x faster, and optimizers walk the
# tree at every update
_entry = tuple.__new__


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

    # --- walking the tree: one walker, every other view filters it ---
    def walk(self) -> list[Entry]:
        """This layer, then every sub-layer, Parameter and buffer under it (lazy ones with
        value None), each once (a tied one under its first name), depth first in attribute
        order."""
        out = [_entry(Entry, ("", "layer", self, None, None))]
        self._walk("", {id(self)}, out)
        return out

    def _walk(self, prefix: str, seen: set, out: list[Entry]) -> None:
        # a list filled by recursion, not nested generators: optimizers walk at every update
        lazy, bufs = self._lazy, self._buffers
        for attr, value in self.__dict__.items():
            if attr in bufs:
                out.append(_entry(Entry, (prefix + attr, "buffer", value, self, attr)))
                continue
            if isinstance(value, (Parameter, Layer)):
                items: Any = ((attr, value),)
            elif isinstance(value, (list, tuple, dict)):
                items = _expand(attr, value)
            else:
                if value is None and attr in lazy:
                    out.append(_entry(Entry, (prefix + attr, "param", None, self, attr)))
                continue
            for name, v in items:
                if id(v) in seen:
                    continue
                seen.add(id(v))
                if isinstance(v, Parameter):
                    out.append(_entry(Entry, (prefix + name, "param", v, self, name)))
                else:
                    out.append(_entry(Entry, (prefix + name, "layer", v, self, name)))
                    v._walk(f"{prefix}{name}.", seen, out)

    def _state_entries(self) -> list[Entry]:
        """The parameters and buffers of ``walk``, created or not."""
        return [e for e in self.walk() if e.kind != "layer"]

    def named_params(self) -> Iterator[tuple[str, Parameter]]:
        """("fc1.W", Parameter) pairs in a deterministic order (attribute definition order)."""
        for e in self.walk():
            if e.kind == "param" and e.value is not None:
                yield e.name, e.value

    def params(self) -> Iterator[Parameter]:
        """Every Parameter of this layer and its sub-layers, in ``named_params`` order."""
        return iter([e.value for e in self.walk() if e.kind == "param" and e.value is not None])

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """("bn.avg_mean", array) pairs of the buffers that exist."""
        for e in self.walk():
            if e.kind == "buffer" and e.value is not None:
                yield e.name, e.value

    def all_layers(self) -> Iterator[Layer]:
        """This layer and every sub-layer, each once, depth first in attribute order."""
        return iter([e.value for e in self.walk() if e.kind == "layer"])

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
        layers = []
        for e in self.walk():
            v = e.value
            if e.kind == "layer":
                layers.append(v)
            elif e.kind == "param" and v is not None:
                v.data = b.transfer(v.data, dev)
                if v.grad is not None:
                    v.grad = Variable(b.transfer(v.grad.data, dev), requires_grad=False)
            elif v is not None:
                setattr(e.owner, e.attr, b.transfer(v, dev))
        for layer in layers:
            layer._moved()
        return self

    def to_cpu(self) -> Layer:
        """``to("cpu")`` (DeZero's name)."""
        return self.to("cpu")

    def to_gpu(self, device: int = 0) -> Layer:
        """``to("cuda:<device>")`` (DeZero's name)."""
        return self.to(f"cuda:{device}")

    def _moved(self) -> None:
        """Called on every layer after ``to()`` moved the tree (recurrent layers forget their
        state here)."""

    # --- state ---
    def state_dict(self) -> dict[str, Any]:
        """Every parameter and buffer that exists, by name, as host NumPy arrays."""
        out = {}
        for e in self._state_entries():
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
        self.prepare_load(state, strict)()

    def state_spec(self) -> dict[str, tuple | None]:
        """What a state file may hold: name -> (shape, dtype name), None for an entry not
        created yet (any shape); read before any data so that a file cannot make us inflate
        arrays the model has no room for (``xgrad.io.Stateful``)."""
        return {e.name: None if e.value is None else spec_of(e.value)
                for e in self._state_entries()}

    def prepare_load(self, state: Mapping[str, Any], strict: bool = True,
                     prefix: str = "") -> Callable[[], None]:
        """Validate ``state`` and convert its arrays, changing nothing; return the function
        that assigns them (``xgrad.io.Stateful``)."""
        entries = self._state_entries()
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
        lazy_owners: dict[int, list[Entry]] = {}
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
            a = native(a)
            if e.value is not None:
                ref = e.value.data if isinstance(e.value, Variable) else e.value
                new = loaded_like(key, a, ref, "the model")
            else:
                if e.kind == "param" and not is_float_dtype(a):
                    raise StateError(f"key {key!r}: a parameter needs a floating dtype, got "
                                     f"{dtype_name(a.dtype)}")
                if place is not None:
                    new = place_like(a, place)
                else:
                    b, dev = backends.current_target()
                    new = b.namespace.asarray(b.transfer(a, dev or b.default_device),
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
        save(self, path)

    def load_weights(self, path: str, strict: bool = True, *,
                     max_bytes: int | None = MAX_BYTES) -> None:
        """Load ``path`` into this layer (``xgrad.io.load_into``; DeZero's name);
        ``max_bytes`` bounds what parameters not created yet may take."""
        load_into(self, path, strict=strict, max_bytes=max_bytes)

    def __repr__(self) -> str:
        n = sum(1 for _ in self.params())
        return f"{type(self).__name__}({n} parameters)"


class Model(Layer):
    """A Layer meant as the top of a network (DeZero's name); subclass it like a Layer."""

    def plot(self, *inputs: Any, path: str = "model.png") -> Any:
        """Run the model on ``inputs`` and draw the graph of its output to ``path``
        (``xgrad.viz.plot_graph``; a ``.dot`` path needs no Graphviz). Returns the path."""
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
