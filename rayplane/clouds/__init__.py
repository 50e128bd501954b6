"""Clouds: where clusters run (this machine, or an Azure subscription)."""
