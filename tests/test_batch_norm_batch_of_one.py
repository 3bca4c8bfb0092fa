"""batch_norm in training needs more than one value per channel (as in PyTorch): with one, the
batch variance is 0, the output all zeros and running_var would be dragged to 0."""

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import Variable, nn
from xgrad.testing import assert_close, to_host

MSG = r"batch_norm: Expected more than 1 value per channel when training, got input of shape "


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1), (1, 3, 1)])
def test_one_value_per_channel_in_training_is_refused(backend, shape):
    x = backend.asarray(np.arange(3, dtype=np.float32).reshape(shape))
    g, b = backend.asarray(np.ones(3, np.float32)), backend.asarray(np.zeros(3, np.float32))
    rm = Variable(backend.asarray(np.full(3, 0.5, np.float32)))
    rv = Variable(backend.asarray(np.full(3, 2.0, np.float32)))
    with pytest.raises(ValueError, match=MSG + rf"\({', '.join(map(str, shape))},?\)"):
        F.batch_norm(x, g, b, rm, rv)
    np.testing.assert_array_equal(to_host(rm), [0.5] * 3)
    np.testing.assert_array_equal(to_host(rv), [2.0] * 3)
    with xgrad.test_mode():  # test mode uses the running statistics: one sample is fine
        y = F.batch_norm(x, g, b, rm, rv)
    ref = (np.arange(3).reshape(shape) - 0.5) / np.sqrt(np.full(3, 2.0) + 2e-5).reshape(
        (1, 3) + (1,) * (len(shape) - 2))
    assert_close(y, ref.astype(np.float32))


def test_two_values_per_channel_still_train(backend):
    for shape in ((2, 3), (1, 3, 2)):
        x = backend.asarray(np.arange(6, dtype=np.float32).reshape(shape))
        y = F.batch_norm(x, backend.asarray(np.ones(3, np.float32)),
                         backend.asarray(np.zeros(3, np.float32)))
        assert float(np.abs(to_host(y)).sum()) > 0


def test_the_layer_says_so_too(backend):
    layer = nn.BatchNorm()
    x = backend.asarray(np.ones((4, 3), np.float32))
    layer(x)
    mean, var = to_host(layer.avg_mean).copy(), to_host(layer.avg_var).copy()
    with pytest.raises(ValueError, match=MSG):
        layer(backend.asarray(np.ones((1, 3), np.float32)))
    np.testing.assert_array_equal(to_host(layer.avg_mean), mean)
    np.testing.assert_array_equal(to_host(layer.avg_var), var)
