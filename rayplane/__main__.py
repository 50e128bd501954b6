"""``python -m rayplane`` is the ``rayplane`` command."""

from rayplane.cli.main import app

app()
