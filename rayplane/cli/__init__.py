"""The ``rayplane`` command."""
