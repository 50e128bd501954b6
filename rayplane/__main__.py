"""``python -m rayplane`` is not a command: the core does not import its adapters.

It points at the ones that are: the ``rayplane`` command (``python -m cli``) and the operator
verbs (``python -m ops``).
"""

import sys

sys.exit(
    "rayplane (the core package) is not a command: run `rayplane` (or `python -m cli`);"
    " the operator verbs (dev, migrate, api, worker, beat, openapi) are also `python -m ops VERB`"
)
