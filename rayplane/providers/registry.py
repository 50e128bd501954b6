"""Which provider serves which kind of cloud, built from settings."""

from __future__ import annotations

from rayplane.providers.base import Provider
from rayplane.settings import Settings


def build_providers(settings: Settings) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    if settings.local_clouds_enabled:
        from rayplane.providers.local import LocalProvider
        from rayplane.providers.local.logship import Shipping

        shipping = Shipping(settings.log_store(), settings.log_container, settings.log_ship_interval_seconds)
        providers["local"] = LocalProvider(
            settings.ray_root(),
            head_timeout=settings.local_head_timeout_seconds,
            idle_node_seconds=settings.scale_down_idle_seconds,
            node_user=settings.local_node_user or None,
            gcs_redis_url=settings.gcs_redis_url,
            log_shipping=shipping,
        )
    if settings.azure_client_id:
        from rayplane.providers.azure import AzureProvider

        providers["azure"] = AzureProvider(settings)
    return providers
