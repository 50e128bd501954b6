"""The ``azure`` provider: AKS node pools and KubeRay in the customer's subscription."""

from rayplane.providers.azure.provider import AzureProvider

__all__ = ["AzureProvider"]
