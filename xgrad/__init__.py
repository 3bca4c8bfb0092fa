"""xgrad: define-by-run automatic differentiation on the Python array API."""

from xgrad import backends, functions
from xgrad.backends import use_backend
from xgrad.core import (
    BackendMismatchError, Config, Function, GradientError, Parameter, Variable, XgradError,
    as_variable, enable_grad, no_grad, test_mode, using_config,
)
from xgrad.creation import (
    asarray, bool_, float32, float64, get_rng, int32, int64, manual_seed, ones, rand, randn,
    zeros,
)

__version__ = "0.1.0"

__all__ = [
    "BackendMismatchError", "Config", "Function", "GradientError", "Parameter", "Variable",
    "XgradError", "as_variable", "asarray", "backends", "bool_", "enable_grad", "float32",
    "float64", "functions", "get_rng", "int32", "int64", "manual_seed", "no_grad", "ones",
    "rand", "randn", "test_mode", "use_backend", "using_config", "zeros",
]
