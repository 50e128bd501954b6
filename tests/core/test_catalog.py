"""VM size catalog: coverage, documented facts, lookups, suggestions and validation."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import itertools
from pathlib import Path
from typing import Any

import pytest

from rayplane import catalog
from rayplane.catalog import CatalogError, VmSize, parse_entries

REQUIRED: dict[str, list[str]] = {
    "Dsv5": [f"Standard_D{n}s_v5" for n in (2, 4, 8, 16, 32, 48, 64, 96)],
    "Dasv5": [f"Standard_D{n}as_v5" for n in (2, 4, 8, 16, 32, 48, 64, 96)],
    "Esv5": [f"Standard_E{n}s_v5" for n in (2, 4, 8, 16, 20, 32, 48, 64, 96)] + ["Standard_E104is_v5"],
    "NCasT4_v3": [f"Standard_NC{n}as_T4_v3" for n in (4, 8, 16, 64)],
    "NC_A100_v4": [f"Standard_NC{n}ads_A100_v4" for n in (24, 48, 96)],
    "NCads_H100_v5": ["Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5"],
    "NDasrA100_v4": ["Standard_ND96asr_v4"],
    "NDm_A100_v4": ["Standard_ND96amsr_A100_v4"],
    "ND_H100_v5": ["Standard_ND96isr_H100_v5"],
    "Bv1": ["Standard_B1s", "Standard_B1ms", "Standard_B2s", "Standard_B2ms", "Standard_B4ms"],
    "Dv2": ["Standard_D1_v2"],
    "Dsv2": ["Standard_DS1_v2"],
}


def _size(name: str) -> VmSize:
    size = catalog.get(name)
    assert size is not None, name
    return size


@pytest.mark.parametrize(("family", "names"), sorted(REQUIRED.items()))
def test_every_required_family_has_its_sizes(family: str, names: list[str]) -> None:
    in_family = {s.name for s in catalog.families()[family]}
    assert set(names) <= in_family
    for name in names:
        assert _size(name).family == family


# Checked against Microsoft's size pages (URLs per family in rayplane/catalog/README.md).
@pytest.mark.parametrize(
    ("name", "vcpus", "memory_gib", "gpus", "gpu_model"),
    [
        ("Standard_B1s", 1, 1, 0, None),
        ("Standard_D1_v2", 1, 3.5, 0, None),
        ("Standard_D4s_v5", 4, 16, 0, None),
        ("Standard_D96as_v5", 96, 384, 0, None),
        ("Standard_E96s_v5", 96, 672, 0, None),
        ("Standard_E104is_v5", 104, 672, 0, None),
        ("Standard_NC4as_T4_v3", 4, 28, 1, "NVIDIA T4"),
        ("Standard_NC64as_T4_v3", 64, 440, 4, "NVIDIA T4"),
        ("Standard_NC24ads_A100_v4", 24, 220, 1, "NVIDIA A100 80GB PCIe"),
        ("Standard_NC80adis_H100_v5", 80, 640, 2, "NVIDIA H100 NVL"),
        ("Standard_ND96asr_v4", 96, 900, 8, "NVIDIA A100 40GB"),
        ("Standard_ND96amsr_A100_v4", 96, 1900, 8, "NVIDIA A100 80GB"),
        ("Standard_ND96isr_H100_v5", 96, 1900, 8, "NVIDIA H100 80GB"),
    ],
)
def test_documented_facts(name: str, vcpus: int, memory_gib: float, gpus: int, gpu_model: str | None) -> None:
    size = _size(name)
    assert (size.vcpus, size.memory_gib, size.gpus, size.gpu_model) == (vcpus, memory_gib, gpus, gpu_model)
    assert size.has_gpu is (gpus > 0)


def test_lookup_ignores_case_and_returns_the_canonical_entry() -> None:
    canonical = _size("Standard_D4s_v5")
    assert catalog.get("standard_d4S_V5") is canonical
    assert catalog.get("STANDARD_ND96ISR_H100_V5") is _size("Standard_ND96isr_H100_v5")
    assert catalog.get("Standard_D4_v5") is None
    assert catalog.get("") is None


def test_suggest_offers_close_canonical_names() -> None:
    assert catalog.suggest("Standard_D4_v5")[0] == "Standard_D4s_v5"
    assert catalog.suggest("standard_nc4as_t4")[0] == "Standard_NC4as_T4_v3"
    assert catalog.suggest("D4s_v5") == ["Standard_D4s_v5"]
    assert catalog.suggest("standard_e104IS_v5") == ["Standard_E104is_v5"]
    assert len(catalog.suggest("Standard_D4_v5", limit=2)) == 2
    assert catalog.suggest("Standard_D4_v5", limit=0) == []
    assert catalog.suggest("completely-unrelated") == []
    assert catalog.suggest("   ") == []
    for suggestion in catalog.suggest("Standard_ND96asr_A100_v4"):
        assert catalog.get(suggestion) is not None


def test_every_price_is_sourced_and_dated() -> None:
    priced = [s for s in catalog.all_sizes() if s.price is not None]
    assert priced, "expected at least one sourced price"
    today = datetime.date.today()
    for size in priced:
        price = size.price
        assert price is not None
        assert price.usd_per_hour > 0, size.name
        assert price.source.strip(), size.name
        assert price.region.strip(), size.name
        assert price.os == "linux", size.name
        assert isinstance(price.date, datetime.date), size.name
        assert price.date <= today, size.name


# Sizes without a price, each explained in rayplane/catalog/README.md ("Sizes without a price").
# A size leaves this list when a sourced price is added; a size is added only with its reason.
UNPRICED: frozenset[str] = frozenset()  # every size has a sourced price at the moment
README = Path(catalog.__file__).with_name("README.md")


def test_every_size_has_a_price_or_is_on_the_documented_unpriced_list() -> None:
    unpriced = {s.name for s in catalog.all_sizes() if s.price is None}
    assert unpriced == UNPRICED
    section = README.read_text(encoding="utf-8").split("## Sizes without a price", 1)[1].split("\n## ", 1)[0]
    for name in sorted(UNPRICED):
        assert f"`{name}`" in section, f"{name} is unpriced but not listed with its reason in {README}"


def test_prices_are_for_the_shipped_region_and_linked_to_their_source() -> None:
    for size in catalog.all_sizes():
        if size.price is not None:
            assert size.price.region == "eastus", size.name
            assert size.price.source.startswith("https://"), size.name


def test_prices_grow_with_size_within_a_family() -> None:
    # Plausibility, not a derivation: within one family a size with more vCPUs (and so more
    # GPUs, where it has them) never costs less than a smaller one.
    checked = 0
    for family, sizes in catalog.families().items():
        priced = sorted((s for s in sizes if s.price is not None), key=lambda s: (s.vcpus, s.gpus))
        for smaller, larger in itertools.pairwise(priced):
            assert smaller.price is not None
            assert larger.price is not None
            assert larger.price.usd_per_hour > smaller.price.usd_per_hour, (family, smaller.name, larger.name)
            checked += 1
    assert checked >= 15


def test_a_gpu_size_costs_more_than_a_cpu_size_with_as_many_vcpus() -> None:
    cpu = [s for s in catalog.all_sizes() if s.price is not None and not s.has_gpu]
    gpu = [s for s in catalog.all_sizes() if s.price is not None and s.has_gpu]
    assert cpu
    assert gpu
    for g in gpu:
        for c in cpu:
            if c.vcpus <= g.vcpus:
                assert g.price is not None
                assert c.price is not None
                assert g.price.usd_per_hour > c.price.usd_per_hour, (g.name, c.name)


def test_catalog_shape() -> None:
    sizes = catalog.all_sizes()
    assert isinstance(sizes, tuple)
    assert len({s.name.casefold() for s in sizes}) == len(sizes)
    grouped = catalog.families()
    assert sorted(s.name for group in grouped.values() for s in group) == sorted(s.name for s in sizes)
    for family, group in grouped.items():
        assert all(s.family == family for s in group)
    for size in sizes:
        assert size.name.startswith("Standard_")
        assert (size.gpu_model is not None) is size.has_gpu
    with pytest.raises(dataclasses.FrozenInstanceError):
        sizes[0].vcpus = 1  # type: ignore[misc]


# --- validation, on in-memory data ------------------------------------------------------------

GOOD_CPU: dict[str, Any] = {
    "name": "Standard_X2_v9",
    "family": "Xv9",
    "vcpus": 2,
    "memory_gib": 8,
    "gpus": 0,
    "gpu_model": None,
    "price": None,
}
GOOD_GPU: dict[str, Any] = {
    "name": "Standard_X8g_v9",
    "family": "Xgv9",
    "vcpus": 8,
    "memory_gib": 56.5,
    "gpus": 1,
    "gpu_model": "Some GPU",
    "price": {
        "usd_per_hour": 1.25,
        "region": "eastus",
        "os": "linux",
        "source": "https://example.invalid/prices",
        "date": datetime.date(2026, 1, 2),
    },
}


def _entries(**changes: Any) -> list[dict[str, Any]]:
    """A valid two-entry catalog with ``changes`` applied to the GPU entry.

    A ``price_`` prefix targets the price mapping; the value ``...`` deletes the key.
    """
    gpu = copy.deepcopy(GOOD_GPU)
    for key, value in changes.items():
        if key.startswith("price_"):
            if value is ...:
                del gpu["price"][key.removeprefix("price_")]
            else:
                gpu["price"][key.removeprefix("price_")] = value
        elif value is ...:
            del gpu[key]
        else:
            gpu[key] = value
    return [copy.deepcopy(GOOD_CPU), gpu]


def test_valid_data_parses() -> None:
    cpu, gpu = parse_entries(_entries())
    assert cpu == VmSize("Standard_X2_v9", "Xv9", 2, 8.0, 0, None, None)
    assert gpu.has_gpu
    assert gpu.gpu_model == "Some GPU"
    assert gpu.memory_gib == 56.5
    assert gpu.price is not None
    assert gpu.price.date == datetime.date(2026, 1, 2)
    # A quoted date (a string after YAML) is accepted too.
    (_, quoted) = parse_entries(_entries(price_date="2026-01-02"))
    assert quoted.price is not None
    assert quoted.price.date == datetime.date(2026, 1, 2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vcpus": 0}, "vcpus"),
        ({"vcpus": 2.5}, "vcpus"),
        ({"vcpus": True}, "vcpus"),
        ({"memory_gib": -1}, "memory_gib"),
        ({"memory_gib": float("nan")}, "memory_gib"),
        ({"gpus": -1}, "gpus"),
        ({"gpu_model": None}, "gpu_model"),
        ({"gpu_model": ""}, "gpu_model"),
        ({"gpus": 0}, "gpu_model must be null"),
        ({"family": ""}, "family"),
        ({"family": ...}, "missing family"),
        ({"spot": True}, "unknown key"),
        ({"price": "cheap"}, "price must be a mapping"),
        ({"price_usd_per_hour": 0}, "usd_per_hour"),
        ({"price_source": ""}, "source"),
        ({"price_date": ...}, "missing date"),
        ({"price_date": "2026-13-01"}, "YYYY-MM-DD"),
        ({"price_date": datetime.datetime(2026, 1, 2, 3, 4)}, "YYYY-MM-DD"),
        ({"price_os": "windows"}, "price.os"),
        ({"price_region": ...}, "missing region"),
    ],
)
def test_malformed_entry_is_rejected_with_its_name(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message) as err:
        parse_entries(_entries(**changes))
    assert "entry #2 (Standard_X8g_v9)" in str(err.value)


def test_duplicate_names_are_rejected_regardless_of_case() -> None:
    entries = [copy.deepcopy(GOOD_CPU), {**copy.deepcopy(GOOD_CPU), "name": "STANDARD_x2_V9"}]
    with pytest.raises(CatalogError, match=r"entry #2 \(STANDARD_x2_V9\): duplicate name"):
        parse_entries(entries)


@pytest.mark.parametrize("document", [None, [], {"sizes": []}, "Standard_D4s_v5"])
def test_a_document_that_is_not_a_list_of_sizes_is_rejected(document: object) -> None:
    with pytest.raises(CatalogError, match="non-empty list"):
        parse_entries(document, origin="test.yaml")


def test_entries_must_be_mappings_with_a_name() -> None:
    with pytest.raises(CatalogError, match="entry #1: must be a mapping"):
        parse_entries(["Standard_D4s_v5"])
    with pytest.raises(CatalogError, match=r"entry #1 \(Standard D4s v5\): name must not contain whitespace"):
        parse_entries([{**GOOD_CPU, "name": "Standard D4s v5"}])
    with pytest.raises(CatalogError, match="entry #1: name must be a non-empty string"):
        parse_entries([{k: v for k, v in GOOD_CPU.items() if k != "name"}])
