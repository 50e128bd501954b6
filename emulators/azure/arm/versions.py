"""The AKS api-versions this surface serves, and the shape of its answers at each.

:data:`API_VERSIONS` is every stable ``Microsoft.ContainerService`` (aks) api-version from
2025-10-01 to 2026-08-01: the folders ``aks/stable/<version>`` of the public
azure-rest-api-specs repository (2025-10-01, 2026-01-01 through 2026-08-01; there is no
2025-11-01 or 2025-12-01). azure-mgmt-containerservice 41.6.0, which azure-cli 2.91 ships,
sends 2026-06-01; 41.8.0 (Rayplane's) sends 2026-08-01.
"""

from __future__ import annotations

API_VERSIONS = (
    "2025-10-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-01",
    "2026-04-01",
    "2026-05-01",
    "2026-06-01",
    "2026-07-01",
    "2026-08-01",
)
LATEST = API_VERSIONS[-1]
