"""Testing tools for xgrad and its users: dtype-aware ``assert_close``, ``gradcheck`` and
``gradgradcheck``, and a pytest plugin (``xgrad.testing.plugin``) that runs tests on every
backend."""

from xgrad.testing.checks import (
    GradcheckError,
    assert_close,
    default_tolerance,
    gradcheck,
    gradgradcheck,
    to_host,
)

__all__ = ["GradcheckError", "assert_close", "default_tolerance", "gradcheck", "gradgradcheck",
           "to_host"]
