"""The emulator's VM sizes are its own data: Rayplane's catalog must agree with them, size by
size, so a wrong figure in either shows up here rather than passing through an emulator
that believes whatever Rayplane says."""

from __future__ import annotations

import pytest

from emulators.azure.arm import skus
from rayplane import catalog


@pytest.mark.parametrize("size", catalog.all_sizes(), ids=lambda s: s.name)
def test_every_catalog_size_matches_azures_published_figures(size: catalog.VmSize) -> None:
    azure = skus.get(size.name)
    assert azure is not None, f"{size.name} is not a size Azure publishes"
    assert azure.name == size.name
    assert (azure.vcpus, azure.memory_gib, azure.gpus) == (size.vcpus, size.memory_gib, size.gpus)
    assert azure.gpu_model == size.gpu_model


def test_sizes_match_in_any_case_and_quota_families_ignore_spaces() -> None:
    t4 = skus.get("standard_nc4as_t4_v3")
    assert t4 is not None
    assert t4.name == "Standard_NC4as_T4_v3"
    assert skus.family_key(t4.family) == "standardncasv3_t4family"
    assert skus.get("Standard_Nope_v9") is None


def test_the_table_has_one_entry_per_size() -> None:
    names = [s.name.lower() for s in skus.all_skus()]
    assert len(names) == len(set(names))
    assert all(s.vcpus > 0 and s.memory_gib > 0 and (s.gpus > 0) == (s.gpu_model is not None) for s in skus.all_skus())
