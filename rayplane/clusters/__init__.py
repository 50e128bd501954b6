"""Clusters: spec, desired and observed state, the state machine, operations and events."""
