"""``python -m cli`` is the ``rayplane`` command."""

from cli.main import app

app()
