"""Operator verbs and the dev supervisor: an adapter of its own, run as ``python -m ops VERB``.

``rayplane dev|migrate|api|worker|beat|openapi`` replace themselves with this (see
:mod:`cli.main`); the container image runs them that way. ``ops`` may import the core, the API
and the workers; it never imports ``emulators`` (a development distribution of its own): the
Azure demo starts the emulator by module name in a subprocess (:mod:`ops.emulator`).
"""
