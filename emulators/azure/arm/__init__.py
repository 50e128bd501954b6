"""ARM: Microsoft.ContainerService managedClusters and agentPools (see issue 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext


def create_router(ctx: EmulatorContext) -> APIRouter:
    """The Azure-facing routes of this surface."""
    return APIRouter()


def create_admin_router(ctx: EmulatorContext) -> APIRouter:
    """Test-control routes under ``/_emulator/...``."""
    return APIRouter()
