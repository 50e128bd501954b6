"""``python -m ops VERB …``: the operator verbs, which ``rayplane VERB …`` execs into."""

from ops.main import app

# Named after the command people type, so `rayplane dev --help` shows `Usage: rayplane dev`.
app(prog_name="rayplane")
