"""The ``rayplane`` command: an adapter that speaks HTTP only.

It imports nothing from the control plane (``rayplane``, ``api``, ``workers``), from the
operator verbs (``ops``) or from the emulators; ``tests/core/test_adapters.py`` holds it to
that. The operator verbs it lists (``dev``, ``migrate``, ``api``, …) replace the process with
``python -m ops VERB …`` (see :mod:`cli.main`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rayplane")
except PackageNotFoundError:  # a source tree that was never installed: still usable, just unversioned
    __version__ = "0+unknown"
