"""xgrad: define-by-run automatic differentiation on the Python array API."""

from xgrad import backends, data, functions, io, nn, optim, viz
from xgrad.anomaly import AnomalyError, detect_anomaly
from xgrad.backends import use_backend
from xgrad.core import (
    BackendMismatchError,
    Config,
    Function,
    GradientError,
    Parameter,
    Variable,
    XgradError,
    as_variable,
    enable_grad,
    no_grad,
    test_mode,
    using_config,
)
from xgrad.creation import (
    asarray,
    bool_,
    float32,
    float64,
    get_rng,
    int32,
    int64,
    manual_seed,
    ones,
    rand,
    randn,
    zeros,
)

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "BackendMismatchError", "Config", "Function", "GradientError", "Parameter",
    "Variable", "XgradError", "as_variable", "asarray", "backends", "bool_", "data",
    "detect_anomaly", "enable_grad", "float32",
    "float64", "functions", "get_rng", "int32", "int64", "io", "manual_seed", "nn", "no_grad",
    "ones", "optim",
    "rand", "randn", "test_mode", "use_backend", "using_config", "viz", "zeros",
]
