"""Billing: usage intervals observed on clusters (the ground truth), and metering."""
