"""assert_close and gradcheck: comparisons on the host, differentiation checks on the backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xgrad.backends import backend_of
from xgrad.core import Variable, device_of, get_namespace, is_array, is_float_dtype
from xgrad.dtypes import dtype_name


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy of a Variable, an array of any backend, a scalar or nested lists."""
    if isinstance(x, Variable):
        x = x.data
    if is_array(x):
        return np.asarray(backend_of(x).to_host(x))
    return np.asarray(x)


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for ``dtype``: rtol = 4 sqrt(eps) as in SciPy's xp_assert_close; atol the
    same, so that values that should be 0 may carry rounding noise."""
    dt = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype_name(dtype))
    if dt.kind not in "fc":
        return 0.0, 0.0
    eps = float(np.finfo(dt).eps)
    tol = 4 * eps ** 0.5
    return tol, tol


def _backend(x: Any) -> Any:
    if isinstance(x, Variable):
        x = x.data
    return backend_of(x) if is_array(x) else None


def assert_close(actual: Any, desired: Any, *, rtol: float | None = None,
                 atol: float | None = None, check_dtype: bool = False, err_msg: str = "") -> None:
    """Assert ``actual`` ~= ``desired`` elementwise with tolerances from ``actual``'s dtype
    (looser, x4, when the two come from different backends). Reports the worst element."""
    a, d = to_host(actual), to_host(desired)
    if check_dtype and str(a.dtype) != str(d.dtype):
        raise AssertionError(f"{err_msg}dtype mismatch: actual {a.dtype}, desired {d.dtype}")
    if d.shape != a.shape and d.shape != ():
        raise AssertionError(f"{err_msg}shape mismatch: actual {a.shape}, desired {d.shape}")
    r0, a0 = default_tolerance(a.dtype if a.dtype.kind in "fc" else d.dtype)
    ba, bd = _backend(actual), _backend(desired)
    if ba and bd and ba is not bd and (ba.gpu or bd.gpu):  # GPU math rounds differently
        r0, a0 = 4 * r0, 4 * a0
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    d = np.broadcast_to(d, a.shape)
    if a.dtype.kind == "b" or d.dtype.kind == "b":
        bad = a != d
        if bad.any():
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape)) \
                if a.shape else ()
            raise AssertionError(f"{err_msg}{int(bad.sum())} of {a.size} elements differ; first "
                                 f"at {idx}: actual {a[idx]}, desired {d[idx]}")
        return
    af, df = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64), d.astype(
        np.complex128 if d.dtype.kind == "c" else np.float64)
    nan_ok = np.isnan(af) & np.isnan(df)
    same_inf = np.isinf(af) & (af == df)
    err = np.abs(af - df)
    with np.errstate(invalid="ignore"):
        bad = ~(nan_ok | same_inf | (err <= atol + rtol * np.abs(df)))
    if bad.any():
        err = np.where(np.isnan(err), np.inf, err)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(bad, err, -1))),
                                                       a.shape)) if a.shape else ()
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = err / np.abs(df)
        max_rel = np.max(rel[np.isfinite(rel)]) if np.isfinite(rel).any() else np.inf
        raise AssertionError(
            f"{err_msg}not close (rtol={rtol:g}, atol={atol:g}): {int(bad.sum())} of {a.size} "
            f"elements differ; max abs error {np.max(err):.6g}, max rel error {max_rel:.6g}; "
            f"worst at index {worst}: actual {af[worst].item()!r}, "
            f"desired {df[worst].item()!r}")


# ---------------------------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------------------------
def _upcast(x: Any) -> Any:
    """``x`` in float64 on its backend and device, where that device has float64."""
    xp = get_namespace(x)
    if x.dtype == xp.float64:
        return x
    if backend_of(x).lacks_dtype("float64"):  # JAX with its 64-bit types off
        return x
    try:
        return xp.astype(x, xp.float64)
    except Exception:  # a device without float64 (array_api_strict's no_float64, Apple MPS)
        return x


def _host_random(rng: np.random.Generator, like: Any) -> Any:
    return _like(rng.standard_normal(size=tuple(like.shape)), like)


def _like(host: np.ndarray, like: Any) -> Any:
    """Host data as an array of ``like``'s backend, device and dtype."""
    out = backend_of(like).from_host(host, device=device_of(like))
    return get_namespace(out).astype(out, like.dtype) if out.dtype != like.dtype else out


def _arr(value: Any, like: Any) -> Any:
    """``value`` as an array like ``like`` (NumPy turns 0-d arithmetic into scalars)."""
    return value if type(value) is type(like) else get_namespace(like).asarray(value)


def _scalar(v: Variable) -> float:
    return float(to_host(v).reshape(()))


def gradcheck(f: Callable, *inputs: Any, eps: float | None = None, rtol: float | None = None,
              atol: float | None = None, n_directions: int = 3, seed: int = 0,
              upcast: bool = True, raise_exception: bool = True) -> bool:
    """Check ``f``'s backward against central differences.

    Floating inputs are upcast to float64 on their own backend (unless the device lacks it).
    The vector-Jacobian product along ``n_directions`` random directions is compared with
    finite differences of ``<f(x + h v), u>`` for a random cotangent ``u`` (a handful of forward
    passes). The step is relative: element i moves by ``eps * max(1, |x_i|)``, and the
    tolerance allows for the rounding of ``<f(x), u>`` at the inputs' magnitude, so large
    inputs do not fail correct rules. On failure, a bisection over the input elements (about
    2 log2(size) more forward passes) finds and reports the worst input index."""
    rng = np.random.default_rng(seed)
    datas = [x.data if isinstance(x, Variable) else x for x in inputs]
    wrt = [i for i, x in enumerate(datas) if is_array(x) and is_float_dtype(x)
           and not (isinstance(inputs[i], Variable) and not inputs[i].requires_grad)]
    if not wrt:
        raise ValueError("gradcheck: no floating-point input to differentiate")
    if upcast:
        datas = [_upcast(x) if i in wrt else x for i, x in enumerate(datas)]
    f64 = all(str(datas[i].dtype).endswith("float64") for i in wrt)
    eps = eps if eps is not None else (1e-8 if f64 else 1e-2)
    rtol = rtol if rtol is not None else (1e-5 if f64 else 5e-2)
    atol = atol if atol is not None else (1e-7 if f64 else 5e-2)
    machine_eps = 2.0 ** -52 if f64 else 2.0 ** -23
    hosts = {i: to_host(datas[i]).astype(np.float64) for i in wrt}
    scales = {i: np.maximum(1.0, np.abs(hosts[i])) for i in wrt}  # relative step

    def evaluate(ds: list) -> Variable:
        vs = [Variable(d, requires_grad=True) if i in wrt else d for i, d in enumerate(ds)]
        y = f(*vs)
        ys = y if isinstance(y, (tuple, list)) else (y,)
        return vs, ys

    vs, ys = evaluate(datas)
    us = [_host_random(rng, y.data) for y in ys]

    def loss(ys_: tuple) -> Variable:
        total = None
        for y, u in zip(ys_, us):
            term = (y * u).sum()
            total = term if total is None else total + term
        return total

    L = loss(ys)
    # the size of <f(x), u>'s terms: what its rounding error scales with
    L_abs = sum(float(np.sum(np.abs(to_host(y) * to_host(u)))) for y, u in zip(ys, us))
    noise = 64 * machine_eps * L_abs / eps
    L.backward()
    grads = []
    for i in wrt:
        g = vs[i].grad
        if g is None:
            g = Variable(get_namespace(datas[i]).zeros_like(datas[i]))
        if g.shape != vs[i].shape or g.dtype != vs[i].dtype:
            raise GradcheckError(f"gradient {i} has shape {g.shape} dtype {g.dtype}, input has "
                                 f"{vs[i].shape} {vs[i].dtype}")
        grads.append(to_host(g.data).astype(np.float64))
    grads_by = dict(zip(wrt, grads))

    def L_at(ds: list) -> float:
        _, ys_ = evaluate(ds)
        return _scalar(loss(ys_))

    def numeric(dirs: dict) -> float:
        """Central difference of L along the host directions ``dirs`` (input -> array)."""
        moved = {i: _like(dirs[i] * eps, datas[i]) for i in dirs}
        plus = [_arr(d + moved[i], d) if i in moved else d for i, d in enumerate(datas)]
        minus = [_arr(d - moved[i], d) if i in moved else d for i, d in enumerate(datas)]
        return (L_at(plus) - L_at(minus)) / (2 * eps)

    def error(dirs: dict) -> tuple[float, float, float]:
        """(numeric - analytic, analytic, numeric) along ``dirs``."""
        num = numeric(dirs)
        ana = sum(float(np.sum(grads_by[i] * d)) for i, d in dirs.items())
        return num - ana, ana, num

    ok, report = True, ""
    for _ in range(n_directions):
        dirs = {i: rng.standard_normal(size=hosts[i].shape) * scales[i] for i in wrt}
        err, analytic, num = error(dirs)
        if not abs(err) <= atol + noise + rtol * max(abs(num), abs(analytic)):
            ok = False
            report = f"directional derivative: analytic {analytic!r}, numeric {num!r}"
            break
    if ok:
        return True
    report += _worst_element(hosts, scales, grads_by, error, rng)
    if raise_exception:
        raise GradcheckError(f"gradcheck failed for {getattr(f, '__name__', f)!r}: {report}")
    return False


def _mag(e: float) -> float:
    """|e|, with NaN as the largest."""
    return float("inf") if e != e else abs(e)


def _worst_element(hosts: dict, scales: dict, grads_by: dict, error: Callable,
                   rng: np.random.Generator) -> str:
    """Name the input index whose derivative is worst, by bisection: the error along a
    direction of random signs on a set of elements mixes those elements' errors, so keep
    the half whose error is larger (two forward passes per halving, not two per element)."""
    best, best_err = None, -1.0
    for i, x in hosts.items():  # the input with the largest error along random signs
        signs = rng.choice([-1.0, 1.0], size=x.shape) * scales[i]
        e = _mag(error({i: signs})[0])
        if e > best_err:
            best, best_err = (i, signs), e
    i, signs = best
    idx = np.arange(hosts[i].size)
    flat = signs.reshape(-1)
    while idx.size > 1:
        half = idx[: idx.size // 2]
        d = np.zeros(flat.size)
        d[half] = flat[half]
        e_half = _mag(error({i: d.reshape(hosts[i].shape)})[0])
        d = np.zeros(flat.size)
        rest = idx[idx.size // 2:]
        d[rest] = flat[rest]
        e_rest = _mag(error({i: d.reshape(hosts[i].shape)})[0])
        idx = half if e_half >= e_rest else rest
    k = int(idx[0])
    d = np.zeros(flat.size)
    d[k] = scales[i].reshape(-1)[k]
    err, ana, num = error({i: d.reshape(hosts[i].shape)})
    s = float(d[k])
    where = tuple(int(v) for v in np.unravel_index(k, hosts[i].shape)) if hosts[i].shape else ()
    return (f"; worst element: input {i} index {where}: analytic {ana / s!r}, numeric "
            f"{num / s!r} (abs error {abs(err) / s:.3g})")


def gradgradcheck(f: Callable, *inputs: Any, seed: int = 0, **kwargs: Any) -> bool:
    """Check second derivatives: gradcheck of ``x -> <grad_x <f(x), u>, w>`` built with
    ``backward(create_graph=True)``."""
    rng = np.random.default_rng(seed + 1)
    state: dict = {}

    def first_grads(*vs: Any) -> Variable:
        y = f(*vs)
        ys = y if isinstance(y, (tuple, list)) else (y,)
        if "u" not in state:
            state["u"] = [_host_random(rng, y_.data) for y_ in ys]
        total = None
        for y_, u in zip(ys, state["u"]):
            term = (y_ * u).sum()
            total = term if total is None else total + term
        diff = [v for v in vs if isinstance(v, Variable) and v.requires_grad]
        for v in diff:
            v.cleargrad()
        total.backward(create_graph=True)
        gs = [v.grad for v in diff]
        for v in diff:
            v.cleargrad()  # the outer backward must start from clean leaves
        if "w" not in state:
            state["w"] = [_host_random(rng, v.data) for v in diff]
        out = None
        for g, w in zip(gs, state["w"]):
            if g is None:
                continue
            term = (g * w).sum()
            out = term if out is None else out + term
        if out is None:
            raise GradcheckError("gradgradcheck: f has no gradient with respect to its inputs")
        return out

    return gradcheck(first_grads, *inputs, seed=seed, **kwargs)
