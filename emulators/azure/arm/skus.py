"""The VM sizes emulated ARM knows, as Azure publishes them: the emulator's own data.

Rayplane keeps a catalog of its own (``rayplane/catalog``); the emulator never reads it (an
import-linter contract forbids ``emulators`` to import Rayplane), so a wrong vCPU count,
GPU count or quota family in Rayplane's catalog shows up as a disagreement with Azure's
figures here instead of being accepted by an emulator that believes whatever Rayplane says.

Sources, restated in this module's own form:

- vCPUs, memory (GiB) and GPUs: Microsoft's size pages for each series
  (https://learn.microsoft.com/en-us/azure/virtual-machines/sizes/overview and the
  per-series pages it links, for example ``sizes/general-purpose/dsv5-series``).
- ``family``: the quota family a size is counted in, as the resource SKUs list names it
  (``az vm list-skus``'s ``family`` column, the ``Microsoft.Compute/skus`` API). Azure's own
  spelling varies (``standardDSv5Family``, ``Standard NCASv3_T4 Family``, ``standard
  NDAMSv4_A100Family``); quota keys are matched with case and spaces ignored, as the
  usage API's ``name.value`` drops the spaces.

Sizes are matched case-insensitively, as ARM matches ``vmSize``. The table holds more sizes
than Rayplane ships (AKS's usual system-pool sizes, older D and NC series), as Azure does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class VmSku:
    name: str
    family: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str | None = None


def family_key(family: str) -> str:
    """A quota family as the usage API keys it: no spaces, any case."""
    return family.replace(" ", "").lower()


def _series(family: str, pattern: str, rows: Sequence[tuple[int, float]]) -> list[VmSku]:
    """Sizes of a series whose name carries the vCPU count (``pattern`` has ``{n}``)."""
    return [VmSku(pattern.format(n=n), family, n, mem) for n, mem in rows]


_D_ROWS: list[tuple[int, float]] = [(2, 8), (4, 16), (8, 32), (16, 64), (32, 128), (48, 192), (64, 256), (96, 384)]
_E_ROWS: list[tuple[int, float]] = [
    (2, 16),
    (4, 32),
    (8, 64),
    (16, 128),
    (20, 160),
    (32, 256),
    (48, 384),
    (64, 512),
    (96, 672),
]

_SKUS: list[VmSku] = [
    # B-series v1 (burstable).
    VmSku("Standard_B1s", "standardBSFamily", 1, 1),
    VmSku("Standard_B1ms", "standardBSFamily", 1, 2),
    VmSku("Standard_B2s", "standardBSFamily", 2, 4),
    VmSku("Standard_B2ms", "standardBSFamily", 2, 8),
    VmSku("Standard_B4ms", "standardBSFamily", 4, 16),
    VmSku("Standard_B8ms", "standardBSFamily", 8, 32),
    # Dv2 and DSv2 (3.5 GiB per vCPU; DS2_v2 was AKS's default node size for years).
    VmSku("Standard_D1_v2", "standardDv2Family", 1, 3.5),
    VmSku("Standard_D2_v2", "standardDv2Family", 2, 7),
    VmSku("Standard_D3_v2", "standardDv2Family", 4, 14),
    VmSku("Standard_D4_v2", "standardDv2Family", 8, 28),
    VmSku("Standard_DS1_v2", "standardDSv2Family", 1, 3.5),
    VmSku("Standard_DS2_v2", "standardDSv2Family", 2, 7),
    VmSku("Standard_DS3_v2", "standardDSv2Family", 4, 14),
    VmSku("Standard_DS4_v2", "standardDSv2Family", 8, 28),
    VmSku("Standard_DS5_v2", "standardDSv2Family", 16, 56),
    # Dsv3, Dsv5, Ddsv5, Dasv5 (4 GiB per vCPU).
    *_series("standardDSv3Family", "Standard_D{n}s_v3", [(2, 8), (4, 16), (8, 32), (16, 64), (32, 128), (64, 256)]),
    *_series("standardDSv5Family", "Standard_D{n}s_v5", _D_ROWS),
    *_series("standardDDSv5Family", "Standard_D{n}ds_v5", _D_ROWS),
    *_series("standardDASv5Family", "Standard_D{n}as_v5", _D_ROWS),
    # Esv5 (8 GiB per vCPU up to 64; 96 vCPUs have 672 GiB, as has the isolated E104is_v5).
    *_series("standardESv5Family", "Standard_E{n}s_v5", _E_ROWS),
    VmSku("Standard_E104is_v5", "standardEISv5Family", 104, 672),
    # NCasT4_v3: NVIDIA T4.
    VmSku("Standard_NC4as_T4_v3", "Standard NCASv3_T4 Family", 4, 28, 1, "NVIDIA T4"),
    VmSku("Standard_NC8as_T4_v3", "Standard NCASv3_T4 Family", 8, 56, 1, "NVIDIA T4"),
    VmSku("Standard_NC16as_T4_v3", "Standard NCASv3_T4 Family", 16, 110, 1, "NVIDIA T4"),
    VmSku("Standard_NC64as_T4_v3", "Standard NCASv3_T4 Family", 64, 440, 4, "NVIDIA T4"),
    # NCv3: NVIDIA V100.
    VmSku("Standard_NC6s_v3", "standardNCSv3Family", 6, 112, 1, "NVIDIA V100"),
    VmSku("Standard_NC12s_v3", "standardNCSv3Family", 12, 224, 2, "NVIDIA V100"),
    VmSku("Standard_NC24s_v3", "standardNCSv3Family", 24, 448, 4, "NVIDIA V100"),
    # NC_A100_v4: NVIDIA A100 80 GB PCIe.
    VmSku("Standard_NC24ads_A100_v4", "StandardNCADSA100v4Family", 24, 220, 1, "NVIDIA A100 80GB PCIe"),
    VmSku("Standard_NC48ads_A100_v4", "StandardNCADSA100v4Family", 48, 440, 2, "NVIDIA A100 80GB PCIe"),
    VmSku("Standard_NC96ads_A100_v4", "StandardNCADSA100v4Family", 96, 880, 4, "NVIDIA A100 80GB PCIe"),
    # NCads_H100_v5: NVIDIA H100 NVL.
    VmSku("Standard_NC40ads_H100_v5", "StandardNCadsH100v5Family", 40, 320, 1, "NVIDIA H100 NVL"),
    VmSku("Standard_NC80adis_H100_v5", "StandardNCadsH100v5Family", 80, 640, 2, "NVIDIA H100 NVL"),
    # ND A100 v4 (40 GB), NDm A100 v4 (80 GB), ND H100 v5.
    VmSku("Standard_ND96asr_v4", "Standard NDASv4_A100 Family", 96, 900, 8, "NVIDIA A100 40GB"),
    VmSku("Standard_ND96amsr_A100_v4", "standard NDAMSv4_A100Family", 96, 1900, 8, "NVIDIA A100 80GB"),
    VmSku("Standard_ND96isr_H100_v5", "standardNDSH100v5Family", 96, 1900, 8, "NVIDIA H100 80GB"),
]

_BY_NAME: dict[str, VmSku] = {sku.name.lower(): sku for sku in _SKUS}


def get(name: str) -> VmSku | None:
    """The size called ``name`` (any case), or None when Azure has no such size here."""
    return _BY_NAME.get(name.lower())


def all_skus() -> tuple[VmSku, ...]:
    return tuple(_SKUS)
