"""The Azure VM size catalog: what each size Rayplane can place Ray nodes on looks like.

Contract:
- The catalog is the package file ``vm_sizes.yaml`` (read through ``importlib.resources``,
  so it works from an installed wheel). It is read and validated once per process, on the
  first call of any lookup below; the result is immutable and shared.
- A malformed file raises ``CatalogError`` from every lookup (nothing half-loaded is kept),
  naming the entry at fault (its position and, when it has one, its name) and the problem.
- Size names are matched case-insensitively; every lookup returns the canonical entry,
  spelled as Azure spells it.
- ``price`` is ``None`` unless a public pay-as-you-go figure was actually found; a price
  is one figure for one region and OS on one date, never an estimate.
- Only PyYAML beyond the standard library.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

__all__ = [
    "CatalogError",
    "Price",
    "VmSize",
    "all_sizes",
    "families",
    "get",
    "parse_entries",
    "suggest",
]

CATALOG_FILE = "vm_sizes.yaml"
SIZE_KEYS = frozenset({"name", "family", "vcpus", "memory_gib", "gpus", "gpu_model", "price"})
PRICE_KEYS = frozenset({"usd_per_hour", "region", "os", "source", "date"})
PRICE_OSES = frozenset({"linux"})
_STANDARD_PREFIX = "standard_"


class CatalogError(ValueError):
    """The catalog data is malformed; the message names the entry and the problem."""


@dataclass(frozen=True, slots=True)
class Price:
    """One public pay-as-you-go figure: USD per hour for one region and OS, as of ``date``.

    ``source`` is the URL (or document title) the figure was read from; ``date`` is the day
    the figure was published or seen there.
    """

    usd_per_hour: float
    region: str
    os: str
    source: str
    date: datetime.date


@dataclass(frozen=True, slots=True)
class VmSize:
    """One Azure VM size: counts as Microsoft's size documentation gives them.

    ``gpu_model`` is set exactly when ``gpus > 0``.
    """

    name: str
    family: str
    vcpus: int
    memory_gib: float
    gpus: int
    gpu_model: str | None
    price: Price | None

    @property
    def has_gpu(self) -> bool:
        """True when the size has at least one GPU."""
        return self.gpus > 0


@dataclass(frozen=True, slots=True)
class _Catalog:
    sizes: tuple[VmSize, ...]
    by_key: Mapping[str, VmSize]


def _key(name: str) -> str:
    return name.casefold()


def _fail(where: str, problem: str) -> CatalogError:
    return CatalogError(f"{where}: {problem}")


def _as_int(value: object) -> int | None:
    """``value`` when it is a real int (bools are not), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _as_number(value: object) -> float | None:
    """``value`` as a float when it is a finite int or float (bools are not), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(entry: Mapping[object, object], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{field} must be a non-empty string, got {value!r}")
    if value != value.strip():
        raise _fail(where, f"{field} has leading or trailing spaces: {value!r}")
    return value


def _check_keys(entry: Mapping[object, object], expected: frozenset[str], where: str, what: str) -> None:
    keys = set(entry)
    missing = sorted(expected - keys)
    unknown = sorted(str(k) for k in keys - expected)
    if missing:
        raise _fail(where, f"{what} is missing {', '.join(missing)}")
    if unknown:
        raise _fail(where, f"{what} has unknown key(s) {', '.join(unknown)}")


def _parse_date(value: object, where: str) -> datetime.date:
    # YAML turns an unquoted YYYY-MM-DD into a date; a quoted one stays a string.
    if isinstance(value, datetime.datetime):
        raise _fail(where, f"price.date must be a day (YYYY-MM-DD), not a timestamp: {value!r}")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise _fail(where, f"price.date must be YYYY-MM-DD, got {value!r}")


def _parse_price(value: object, where: str) -> Price | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(where, f"price must be a mapping or null, got {type(value).__name__}")
    _check_keys(value, PRICE_KEYS, where, "price")
    usd = _as_number(value["usd_per_hour"])
    if usd is None or usd <= 0:
        raise _fail(where, f"price.usd_per_hour must be a positive number, got {value['usd_per_hour']!r}")
    price_os = _text(value, "os", f"{where} price")
    if price_os not in PRICE_OSES:
        raise _fail(where, f"price.os must be one of {', '.join(sorted(PRICE_OSES))}, got {price_os!r}")
    return Price(
        usd_per_hour=usd,
        region=_text(value, "region", f"{where} price"),
        os=price_os,
        source=_text(value, "source", f"{where} price"),
        date=_parse_date(value["date"], where),
    )


def _parse_size(entry: object, where: str) -> VmSize:
    if not isinstance(entry, Mapping):
        raise _fail(where, f"must be a mapping, got {type(entry).__name__}")
    name = _text(entry, "name", where)
    where = f"{where} ({name})"
    if any(ch.isspace() for ch in name):
        raise _fail(where, "name must not contain whitespace")
    _check_keys(entry, SIZE_KEYS, where, "entry")
    vcpus = _as_int(entry["vcpus"])
    if vcpus is None or vcpus <= 0:
        raise _fail(where, f"vcpus must be a positive integer, got {entry['vcpus']!r}")
    memory = _as_number(entry["memory_gib"])
    if memory is None or memory <= 0:
        raise _fail(where, f"memory_gib must be a positive number, got {entry['memory_gib']!r}")
    gpus = _as_int(entry["gpus"])
    if gpus is None or gpus < 0:
        raise _fail(where, f"gpus must be an integer >= 0, got {entry['gpus']!r}")
    gpu_model: str | None = None
    if gpus:
        gpu_model = _text(entry, "gpu_model", where)
    elif entry["gpu_model"] is not None:
        raise _fail(where, f"gpu_model must be null when gpus is 0, got {entry['gpu_model']!r}")
    return VmSize(
        name=name,
        family=_text(entry, "family", where),
        vcpus=vcpus,
        memory_gib=memory,
        gpus=gpus,
        gpu_model=gpu_model,
        price=_parse_price(entry["price"], where),
    )


def parse_entries(entries: object, *, origin: str = CATALOG_FILE) -> tuple[VmSize, ...]:
    """Validate raw catalog data (the YAML document, already loaded) and build the sizes.

    ``entries`` must be a non-empty list of mappings with exactly the keys ``name``,
    ``family``, ``vcpus``, ``memory_gib``, ``gpus``, ``gpu_model`` and ``price``. Rules:
    names are unique (case-insensitively) and free of whitespace; ``vcpus`` is an integer
    > 0; ``memory_gib`` a number > 0; ``gpus`` an integer >= 0; ``gpu_model`` a non-empty
    string when ``gpus > 0`` and null otherwise; ``price`` null or a mapping with exactly
    ``usd_per_hour`` (> 0), ``region``, ``os`` (``linux``), ``source`` and ``date``
    (YYYY-MM-DD). The first violation raises ``CatalogError`` naming ``origin``, the
    entry's position (from 1) and its name. Sizes come back in file order.
    """
    if not isinstance(entries, list) or not entries:
        raise _fail(origin, "the catalog must be a non-empty list of sizes")
    sizes: list[VmSize] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(entries, start=1):
        size = _parse_size(raw, f"{origin} entry #{index}")
        previous = seen.get(_key(size.name))
        if previous is not None:
            raise _fail(f"{origin} entry #{index} ({size.name})", f"duplicate name (already listed as {previous})")
        seen[_key(size.name)] = size.name
        sizes.append(size)
    return tuple(sizes)


@functools.cache
def _catalog() -> _Catalog:
    text = resources.files(__name__).joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{CATALOG_FILE}: not valid YAML: {exc}") from exc
    sizes = parse_entries(document)
    return _Catalog(sizes=sizes, by_key={_key(s.name): s for s in sizes})


def all_sizes() -> tuple[VmSize, ...]:
    """Every size in the catalog, in file order."""
    return _catalog().sizes


def get(name: str) -> VmSize | None:
    """The size called ``name`` (any letter case), or ``None`` when the catalog lacks it."""
    return _catalog().by_key.get(_key(name.strip()))


def families() -> dict[str, tuple[VmSize, ...]]:
    """Sizes grouped by family, families and sizes in file order. A new dict each call."""
    grouped: dict[str, list[VmSize]] = {}
    for size in _catalog().sizes:
        grouped.setdefault(size.family, []).append(size)
    return {family: tuple(sizes) for family, sizes in grouped.items()}


def suggest(name: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` canonical size names closest to ``name``, best first.

    Meant for messages like "unknown VM size Standard_D4_v5; did you mean Standard_D4s_v5?".
    Matching ignores letter case, and a name without the ``Standard_`` prefix is matched as
    if it had it; an exact match (so understood) is returned alone. Returns ``[]`` when
    nothing is close, ``name`` is blank or ``limit < 1``.
    """
    if limit < 1 or not name.strip():
        return []
    catalog = _catalog()
    key = _key(name.strip())
    if not key.startswith(_STANDARD_PREFIX):
        key = _STANDARD_PREFIX + key
    exact = catalog.by_key.get(key)
    if exact is not None:
        return [exact.name]
    matches = difflib.get_close_matches(key, list(catalog.by_key), n=limit, cutoff=0.6)
    return [catalog.by_key[match].name for match in matches]
