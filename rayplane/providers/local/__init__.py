"""The ``local`` provider: Ray clusters as ``ray start`` processes on this machine."""

from rayplane.providers.local.provider import LocalProvider
from rayplane.providers.local.shapes import GROUP_RESOURCE_PREFIX, HEAD_RESOURCE

__all__ = ["GROUP_RESOURCE_PREFIX", "HEAD_RESOURCE", "LocalProvider"]
