"""Shape functions and indexing: hand values, multi-output backward, errors (the common
gradcheck/dtype/device checks are in test_functions_table.py)."""

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host


def var(backend, value, dtype="float64"):
    return Variable(backend.asarray(value, dtype=backend.dtype(dtype)))


def arange(backend, shape, dtype="float64"):
    return var(backend, np.arange(np.prod(shape), dtype=float).reshape(shape), dtype)


def test_repeated_integer_index_accumulates(backend):
    x = var(backend, [[1, 2, 3], [4, 5, 6]], "float32")
    y = x[[0, 0, 1]]
    y.backward()
    assert_close(y, [[1, 2, 3], [1, 2, 3], [4, 5, 6]])
    assert_close(x.grad, [[2, 2, 2], [1, 1, 1]])
    assert x.grad.dtype == x.dtype and x.grad.device == backend.device


def test_index_array_as_variable_and_in_second_axis(backend):
    x = arange(backend, (2, 3))
    idx = Variable(backend.asarray([2, 2, 0]))
    y = x[:, idx]
    y.backward()
    assert_close(y, [[2, 2, 0], [5, 5, 3]])
    assert_close(x.grad, [[1, 0, 2], [1, 0, 2]])


def test_basic_slices_backward_and_double_backward(backend):
    x = arange(backend, (4, 5))
    y = x[1:3, ::-2]
    assert_close(y, to_host(x)[1:3, ::-2])
    F.sum(y * y).backward(create_graph=True)
    want = np.zeros((4, 5))
    want[1:3, ::-2] = 2 * to_host(x)[1:3, ::-2]
    assert_close(x.grad, want)
    g = x.grad
    x.cleargrad()
    F.sum(g).backward()
    mask = np.zeros((4, 5))
    mask[1:3, ::-2] = 2
    assert_close(x.grad, mask)


def test_boolean_mask_indexing(backend):
    x = arange(backend, (2, 3))
    mask = backend.asarray([[True, False, True], [False, False, True]])
    y = x[mask]
    y.backward()
    assert_close(y, [0.0, 2.0, 5.0])
    assert_close(x.grad, [[1, 0, 1], [0, 0, 1]])
    # a mask over the leading axis selects whole rows
    x.cleargrad()
    rows = x[backend.asarray([False, True])]
    F.sum(rows * 2.0).backward()
    assert rows.shape == (1, 3)
    assert_close(x.grad, [[0, 0, 0], [2, 2, 2]])
    assert gradgradcheck(lambda v: v[mask] ** 2, x)


def test_boolean_mask_selecting_nothing(backend):
    x = arange(backend, (2, 2))
    y = x[backend.asarray([[False, False], [False, False]])]
    F.sum(y).backward()
    assert y.shape == (0,)
    assert_close(x.grad, np.zeros((2, 2)))


def test_take_with_repeats_and_nd_indices(backend):
    x = arange(backend, (3, 2))
    y = F.take(x, backend.asarray([[0, 2], [2, 2]]), axis=0)
    y.backward()
    assert y.shape == (2, 2, 2)
    assert_close(y, [[[0, 1], [4, 5]], [[4, 5], [4, 5]]])
    assert_close(x.grad, [[1, 1], [0, 0], [3, 3]])
    with pytest.raises(ValueError, match="take: axis is required"):
        F.take(x, [0])
    with pytest.raises(TypeError, match="take: indices must be an integer array"):
        F.take(x, backend.asarray([0.0]), axis=0)
    with pytest.raises(ValueError, match="take: axis 2 is out of range"):
        F.take(x, [0], axis=2)


def test_split_returns_tuple_and_fills_unused_gradients(backend):
    x = arange(backend, (2, 6))
    parts = F.split(x, [1, 4], axis=1)
    assert isinstance(parts, tuple) and [p.shape for p in parts] == [(2, 1), (2, 3), (2, 2)]
    F.sum(parts[1] * 3.0).backward()  # parts 0 and 2 get no gradient: zeros
    assert_close(x.grad, [[0, 3, 3, 3, 0, 0]] * 2)
    (whole,) = F.split(x, 1, axis=0)
    assert isinstance(whole, Variable) and whole.shape == (2, 6)
    with pytest.raises(ValueError, match=r"split: axis 1 of shape \(2, 6\).*4 equal parts"):
        F.split(x, 4, axis=1)
    with pytest.raises(ValueError, match="split: split points"):
        F.split(x, [4, 1], axis=1)


def test_unstack_inverse_of_stack(backend):
    a, b = arange(backend, (2, 3)), var(backend, np.ones((2, 3)))
    s = F.stack([a, b], axis=-1)
    assert s.shape == (2, 3, 2)
    u0, u1 = F.unstack(s, axis=-1)
    assert_close(u0, a) and assert_close(u1, b)
    F.sum(u0 * 5.0).backward()
    assert_close(a.grad, np.full((2, 3), 5.0))
    assert_close(b.grad, np.zeros((2, 3)))


def test_concat_and_stack_accept_arrays_and_skip_constants(backend):
    a = arange(backend, (2, 2))
    raw = backend.asarray(np.ones((1, 2)), dtype=backend.dtype("float64"))
    y = F.concat([a, raw], axis=0)
    y.backward()
    assert_close(y, [[0, 1], [2, 3], [1, 1]])
    assert_close(a.grad, np.ones((2, 2)))
    z = F.stack([raw, raw])
    assert z.shape == (2, 1, 2) and not z.requires_grad


def test_concat_and_stack_double_backward(backend):
    a, b = arange(backend, (2, 1)), var(backend, [[1.0, 2.0], [3.0, 4.0]])
    assert gradgradcheck(lambda p, q: F.concat([p * p, q], axis=1) ** 2, a, b)
    assert gradgradcheck(lambda p, q: F.stack([p[:, 0], q[:, 1] * q[:, 0]]), a, b)


def test_concat_mismatch_names_function_and_all_shapes(backend):
    a, b, c = arange(backend, (2, 3)), arange(backend, (2, 3)), arange(backend, (4, 2))
    with pytest.raises(ValueError) as e:
        F.concat([a, b, c], axis=0)
    msg = str(e.value)
    assert "concat" in msg and "(2, 3), (2, 3), (4, 2)" in msg
    with pytest.raises(ValueError, match="concat"):
        F.concat([a, arange(backend, (6,))])
    with pytest.raises(ValueError, match="concat: needs at least one"):
        F.concat([])
    with pytest.raises(ValueError, match=r"stack: shapes \(2, 3\), \(4, 2\)"):
        F.stack([a, c])


@pytest.mark.parametrize("name,call", [
    ("concat", lambda x: F.concat([x, x], axis=2)),
    ("stack", lambda x: F.stack([x, x], axis=-4)),
    ("sum", lambda x: F.sum(x, axis=2)),
    ("flip", lambda x: F.flip(x, axis=-3)),
    ("expand_dims", lambda x: F.expand_dims(x, 3)),
    ("squeeze", lambda x: F.squeeze(x, 5)),
    ("split", lambda x: F.split(x, 2, axis=2)),
    ("unstack", lambda x: F.unstack(x, axis=2)),
    ("cumulative_sum", lambda x: F.cumulative_sum(x, axis=2)),
    ("max", lambda x: F.max(x, axis=(0, 2))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_axis_out_of_range_names_function_and_axis(backend, name, call):
    x = arange(backend, (2, 3), "float32")
    with pytest.raises(ValueError, match="out of range") as e:
        call(x)
    assert f"{name}: axis" in str(e.value)


def test_permute_dims_rejects_non_permutations(backend):
    x = arange(backend, (2, 3))
    for axes in [(0, 5), (0, 0), (1,)]:
        with pytest.raises(ValueError, match=r"permute_dims: axes .* shape \(2, 3\)"):
            F.permute_dims(x, axes)


def test_squeeze_and_expand_dims(backend):
    x = arange(backend, (2, 1, 3, 1))
    assert F.squeeze(x).shape == (2, 3)
    assert F.squeeze(x, (1, -1)).shape == (2, 3)
    assert F.expand_dims(F.squeeze(x), (0, 2)).shape == (1, 2, 1, 3)
    with pytest.raises(ValueError, match=r"squeeze: cannot remove axis 0 of size 2"):
        F.squeeze(x, 0)


def test_flip_reverses_and_flips_gradient_back(backend):
    x = arange(backend, (2, 3))
    w = var(backend, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    y = F.flip(x, axis=1)
    F.sum(y * w).backward()
    assert_close(y, [[2, 1, 0], [5, 4, 3]])
    assert_close(x.grad, [[3, 2, 1], [6, 5, 4]])


def test_broadcast_to_and_sum_to_are_adjoint(backend):
    x = var(backend, [[1.0], [2.0]])
    y = F.broadcast_to(x, (3, 2, 4))
    y.backward()
    assert y.shape == (3, 2, 4)
    assert_close(x.grad, [[12.0], [12.0]])
    z = F.sum_to(arange(backend, (2, 3)), (1, 3))
    assert_close(z, [[3.0, 5.0, 7.0]])
    with pytest.raises(ValueError, match="sum_to"):
        F.sum_to(arange(backend, (2, 3)), (2, 2))


def test_no_op_reshape_and_broadcast_return_input(backend):
    x = arange(backend, (2, 3))
    assert F.reshape(x, (2, 3)) is x and F.broadcast_to(x, (2, 3)) is x
    assert F.sum_to(x, (2, 3)) is x


def test_slicing_with_get_item_matches_gradcheck_in_float32(backend):
    x = var(backend, np.linspace(-1, 1, 12).reshape(3, 4), "float32")
    assert gradcheck(lambda v: v[::2, 1:] * v[1:2, :3].sum(), x)
