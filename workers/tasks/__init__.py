"""Task modules, one per domain area."""
