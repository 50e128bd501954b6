"""Tests of the ``rayplane`` CLI."""
