"""Convolution and pooling (xgrad/functions/conv.py) on every backend, against naive loops on
the host (the references of tests/optable.py); gradcheck and gradgradcheck; dtype, device and bad input."""

import numpy as np
import pytest
from optable import conv_ref, deconv_ref, im2col_ref, pair, pool_ref

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host

RNG = np.random.default_rng(99)
X = RNG.standard_normal((2, 3, 5, 5))
W = RNG.standard_normal((4, 3, 3, 3))
B = RNG.standard_normal(4)
# (stride, pad) cases: plain, strided and padded, and different per axis
CASES = [(1, 0), (2, 1), ((2, 1), (0, 1))]
# distinct values 0.1 apart: finite differences (even float32's) never swap a window's maximum
XP = RNG.permutation(150).reshape(2, 3, 5, 5) * 0.1 - 7.0


def arr(backend, a, dtype="float32"):
    return backend.asarray(np.asarray(a), dtype=dtype)


# --- im2col / col2im -------------------------------------------------------------------------
def test_im2col_shapes(backend):
    assert F.im2col(arr(backend, np.zeros((1, 3, 7, 7))), 5).shape == (9, 75)
    assert F.im2col(arr(backend, np.zeros((10, 3, 7, 7))), 5).shape == (90, 75)
    assert F.im2col(arr(backend, X), 3, 2, 1, to_matrix=False).shape == (2, 3, 3, 3, 3, 3)


@pytest.mark.parametrize("s,p", CASES)
def test_im2col_values_and_col2im_adjoint(backend, s, p):
    col = F.im2col(arr(backend, X), (3, 2), s, p)
    assert_close(col, im2col_ref(X, (3, 2), pair(s), pair(p)))
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>
    c = RNG.standard_normal(col.shape)
    back = F.col2im(arr(backend, c), X.shape, (3, 2), s, p)
    assert back.shape == X.shape
    assert_close(np.sum(to_host(col) * c), np.sum(X * to_host(back)), rtol=1e-4)


def test_im2col_col2im_gradients(backend):
    f = lambda x: F.im2col(x, 3, 2, 1)  # noqa: E731
    assert gradcheck(f, arr(backend, X))
    assert gradgradcheck(f, arr(backend, X))
    g = lambda c: F.col2im(c, (2, 3, 5, 5), 3, 2, 1, to_matrix=False)  # noqa: E731
    assert gradcheck(g, arr(backend, RNG.standard_normal((2, 3, 3, 3, 3, 3))))


# --- conv2d / deconv2d -----------------------------------------------------------------------
def test_conv2d_shape_15x15(backend):
    y = F.conv2d(arr(backend, np.zeros((1, 5, 15, 15))), arr(backend, np.zeros((8, 5, 3, 3))),
                 stride=1, pad=1)
    assert y.shape == (1, 8, 15, 15)


@pytest.mark.parametrize("s,p", CASES)
def test_conv2d_forward(backend, s, p):
    assert_close(F.conv2d(arr(backend, X), arr(backend, W), arr(backend, B), s, p),
                 conv_ref(X, W, B, s, p))
    assert_close(F.conv2d(arr(backend, X), arr(backend, W), None, s, p), conv_ref(X, W, None, s, p))


@pytest.mark.parametrize("s,p", CASES[1:])
def test_conv2d_gradients(backend, s, p):
    f = lambda x, w, b: F.conv2d(x, w, b, s, p)  # noqa: E731
    args = arr(backend, X), arr(backend, W), arr(backend, B)
    assert gradcheck(f, *args)
    assert gradgradcheck(f, *args)
    assert gradcheck(lambda x: F.conv2d(x, args[1], stride=s, pad=p), args[0])


@pytest.mark.parametrize("s,p,outsize", [(1, 0, None), (2, 1, None), (2, 1, (6, 6)),
                                         ((2, 1), (0, 1), None)])
def test_deconv2d_forward(backend, s, p, outsize):
    x = RNG.standard_normal((2, 4, 3, 3))
    assert_close(F.deconv2d(arr(backend, x), arr(backend, W), arr(backend, B[:3]), s, p, outsize),
                 deconv_ref(x, W, B[:3], s, p, outsize))


def test_deconv2d_is_conv2d_input_gradient(backend):
    x = Variable(arr(backend, X))
    y = F.conv2d(x, arr(backend, W), stride=2, pad=1)
    gy = RNG.standard_normal(y.shape)
    (y * arr(backend, gy)).sum().backward()
    assert_close(x.grad, F.deconv2d(arr(backend, gy), arr(backend, W), stride=2, pad=1,
                                    outsize=(5, 5)))


def test_deconv2d_gradients(backend):
    f = lambda x, w, b: F.deconv2d(x, w, b, 2, 1, outsize=(6, 6))  # noqa: E731
    args = arr(backend, RNG.standard_normal((2, 4, 3, 3))), arr(backend, W), arr(backend, B[:3])
    assert gradcheck(f, *args)
    assert gradgradcheck(f, *args)


def test_conv_dtype_and_device(backend):
    f32 = backend.xp.float32
    for f, shape_x in ((lambda x, w, b: F.conv2d(x, w, b, 2, 1), X.shape),
                       (lambda x, w, b: F.deconv2d(x, w, b[:3], 2, 1), (2, 4, 3, 3))):
        x = Variable(arr(backend, RNG.standard_normal(shape_x)))
        w, b = Variable(arr(backend, W)), Variable(arr(backend, B))
        y = f(x, w, b)
        assert y.dtype == f32 and y.device == backend.device
        (y * y).sum().backward()
        for v in (x, w, b):
            assert v.grad.dtype == f32 and v.grad.device == backend.device


def test_conv_bad_input(backend):
    x = arr(backend, np.zeros((1, 5, 15, 15)))
    with pytest.raises(ValueError, match=r"conv2d: .*5 channels.*\(1, 5, 15, 15\).*\(8, 4, 3, 3\)"):
        F.conv2d(x, arr(backend, np.zeros((8, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(8,\)"):
        F.conv2d(x, arr(backend, np.zeros((8, 5, 3, 3))), arr(backend, np.zeros(5)))
    with pytest.raises(ValueError, match="conv2d: kernel .* does not fit"):
        F.conv2d(arr(backend, np.zeros((1, 5, 2, 2))), arr(backend, np.zeros((8, 5, 3, 3))))
    with pytest.raises(ValueError, match="conv2d: input must be 4-D"):
        F.conv2d(arr(backend, np.zeros((5, 15, 15))), arr(backend, np.zeros((8, 5, 3, 3))))
    with pytest.raises(TypeError, match="conv2d: expected a floating-point array, got dtype .*int32"):
        F.conv2d(arr(backend, np.zeros((1, 5, 15, 15)), "int32"), arr(backend, np.zeros((8, 5, 3, 3))))
    with pytest.raises(ValueError, match="conv2d: stride must be >= 1"):
        F.conv2d(x, arr(backend, np.zeros((8, 5, 3, 3))), stride=0)
    with pytest.raises(ValueError, match=r"deconv2d: input has 5 channels.*\(4, 8, 3, 3\)"):
        F.deconv2d(x, arr(backend, np.zeros((4, 8, 3, 3))))
    with pytest.raises(ValueError, match="deconv2d: output size"):
        F.deconv2d(x, arr(backend, np.zeros((5, 2, 3, 3))), outsize=(40, 40))


# --- pooling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), ((2, 3), 1, (1, 0))])
def test_pooling_forward(backend, k, s, p):
    x = X - 3.0  # all negative-ish: zero padding would win a max, -inf padding must not
    assert_close(F.max_pooling(arr(backend, x), k, s, p), pool_ref(x, k, s, p, "max"))
    assert_close(F.average_pooling(arr(backend, x), k, s, p), pool_ref(x, k, s, p, "avg"))


def test_pooling_gradients(backend):
    for f in (lambda x: F.max_pooling(x, 3, 2, 1), lambda x: F.average_pooling(x, 3, 2, 1),
              lambda x: F.max_pooling(x, 2, 1)):
        assert gradcheck(f, arr(backend, XP))
        assert gradgradcheck(f, arr(backend, XP))


def test_max_pooling_routes_gradient_to_the_maximum(backend):
    x = Variable(arr(backend, [[[[1, 5, 2, 0], [3, 4, 9, 1], [0, 0, 1, 1], [2, 0, 1, 7]]]]))
    y = F.max_pooling(x, 2, 2)
    assert_close(y, np.array([[[[5, 9], [2, 7]]]]))
    y.backward()
    assert_close(x.grad, np.array([[[[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]]]]))


def test_pooling_dtype_device_and_bad_input(backend):
    for f in (lambda x: F.max_pooling(x, 2, 2, 1), lambda x: F.average_pooling(x, 2, 2, 1)):
        x = Variable(arr(backend, X))
        y = f(x)
        assert y.dtype == backend.xp.float32 and y.device == backend.device
        (y * y).sum().backward()
        assert x.grad.dtype == backend.xp.float32 and x.grad.device == backend.device
    with pytest.raises(ValueError, match="max_pooling: pad"):
        F.max_pooling(arr(backend, X), 2, 1, 2)
    with pytest.raises(TypeError, match="average_pooling: kernel_size"):
        F.average_pooling(arr(backend, X), 2.5)


def kept_for_backward(y, *given):
    """Shapes of the arrays that the graph of ``y`` holds for its backward: every recorded
    input and what each rule stored, other than the arrays of ``given`` (the op's own inputs,
    which the caller holds anyway) and the engine's own references to each call's arrays."""
    skip = {id(v.data) for v in given}
    kept, todo, seen = [], [y.creator], set()
    while todo:
        f = todo.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        held = list(f.inputs)
        for k, v in vars(f).items():
            if k not in ("inputs", "outputs", "_xs", "_ys"):  # the engine's, not the rule's
                held += v if isinstance(v, (list, tuple)) else [v]
        for v in held:
            a = v.data if isinstance(v, Variable) else v
            if hasattr(a, "shape") and hasattr(a, "dtype") and id(a) not in skip:
                kept.append((type(f).__name__, tuple(a.shape)))
            if isinstance(v, Variable):
                todo.append(v.creator)
    return kept


def test_conv_and_pooling_keep_only_what_backward_needs(backend):
    """conv2d, deconv2d and average_pooling keep their inputs only (the weight gradient
    recomputes the patches); max_pooling keeps its input and a mask per kernel offset."""
    x, w, b = (Variable(arr(backend, a)) for a in (X, W, B))
    assert kept_for_backward(F.conv2d(x, w, b, 1, 1), x, w, b) == []
    xd, b3 = Variable(arr(backend, RNG.standard_normal((2, 4, 3, 3)))), Variable(arr(backend, B[:3]))
    assert kept_for_backward(F.deconv2d(xd, w, b3, 2, 1), xd, w, b3) == []
    assert kept_for_backward(F.average_pooling(x, 3, 1, 1), x) == []
    assert kept_for_backward(F.max_pooling(x, 3, 1, 1), x) == [("MaxPooling", (2, 3, 5, 5))] * 9
