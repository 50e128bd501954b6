"""Synchronous checks of ARM writes, answered as AKS answers them (400/409/412 before any LRO).

Sources for the codes and wording (AKS's own answers, quoted in public issue threads):

* pool name: ``InvalidParameter`` "The value of parameter agentPoolProfile.name is invalid"
  (Azure/AKS#3300); Linux names are ``^[a-z][a-z0-9]{0,11}$``, Windows names 1-6 characters.
* VM size the subscription cannot use: 400 ``BadRequest`` "The VM size of
  AgentPoolProfile:<pool> is not allowed in your subscription in location '<loc>'"
  (Azure/azure-cli#6083, dotnet/core#8000). A known size without capacity is 400
  ``SkuNotAvailable`` ("The requested size ... is currently not available", aka.ms/azureskunotavailable).
* quota: 400 ``QuotaExceeded`` at the PUT, "Operation could not be completed as it results in
  exceeding approved <family> Cores quota. Additional details - ..." (Azure/azure-cli#15013,
  mspnp/aks-baseline#377): AKS checks quota in preflight, before the operation starts.
* concurrent writes: 409 ``OperationNotAllowed`` (cilium/cilium#25944).
* eTag mismatch: 412 ``PreconditionFailed`` (kubernetes-sigs/cloud-provider-azure#9728).
* immutable fields: 400 ``PropertyChangeNotAllowed``.
* spot: AKS's REST reference says ``scaleSetEvictionPolicy`` "cannot be specified unless the
  scaleSetPriority is 'Spot'", and spot pools are User pools only (aka.ms/aks/spot).
"""

from __future__ import annotations

import re
from typing import Any

from emulators.azure.arm import skus
from emulators.azure.arm.errors import ArmError, invalid_parameter, precondition_failed

_LINUX_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_WINDOWS_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,5}$")
_IMMUTABLE_POOL_FIELDS = ("vmSize", "scaleSetPriority", "osType")
MAX_NODES_PER_POOL = 1000


def vm_size(name: str, pool: str, location: str, unavailable: list[str]) -> skus.VmSku:
    """Azure's size called ``name`` (``emulators.azure.arm.skus``); 400 when AKS would refuse it."""
    size = skus.get(name) if isinstance(name, str) else None
    if size is None:
        message = (
            f"The VM size of AgentPoolProfile:{pool} is not allowed in your subscription in location "
            f"'{location}'. For more details, please visit https://aka.ms/aks/quotas-skus-regions"
        )
        raise ArmError(400, "BadRequest", message, target="agentPoolProfile.vmSize")
    if size.name.lower() in {u.lower() for u in unavailable}:
        message = (
            f"The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
            f"{size.name}' is currently not available in location '{location}'. Please try another size or "
            "deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details."
        )
        raise ArmError(400, "SkuNotAvailable", message, target="agentPoolProfile.vmSize")
    return size


def _int(props: dict[str, Any], field: str) -> int | None:
    value = props.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_parameter(f"agentPoolProfile.{field}", f"{field} must be an integer")
    return value


def pool(name: str, props: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Check one pool's (defaulted) properties; ``previous`` is its stored properties, if any."""
    os_type = props.get("osType", "Linux")
    pattern = _WINDOWS_POOL_NAME if os_type == "Windows" else _LINUX_POOL_NAME
    if not pattern.match(name):
        raise invalid_parameter("agentPoolProfile.name")
    mode = props.get("mode")
    if mode not in ("System", "User"):
        raise invalid_parameter("agentPoolProfile.mode", f"mode must be System or User, got {mode!r}")
    priority = props.get("scaleSetPriority", "Regular")
    if priority not in ("Regular", "Spot"):
        raise invalid_parameter("agentPoolProfile.scaleSetPriority", f"unknown priority {priority!r}")
    if priority == "Spot":
        if mode == "System":
            raise invalid_parameter(
                "agentPoolProfile.mode", "Spot priority is only supported for User mode agent pools"
            )
        policy = props.get("scaleSetEvictionPolicy")
        if policy not in ("Delete", "Deallocate"):
            raise invalid_parameter(
                "agentPoolProfile.scaleSetEvictionPolicy", "must be Delete or Deallocate for Spot agent pools"
            )
        price = props.get("spotMaxPrice", -1)
        if isinstance(price, bool) or not isinstance(price, int | float) or (price != -1 and price <= 0):
            raise invalid_parameter("agentPoolProfile.spotMaxPrice", "must be -1 or a positive price")
    elif "scaleSetEvictionPolicy" in props or "spotMaxPrice" in props:
        raise invalid_parameter(
            "agentPoolProfile.scaleSetEvictionPolicy", "eviction policy and max price apply to Spot pools only"
        )
    floor = 1 if mode == "System" else 0
    count = _int(props, "count")
    if count is None or not floor <= count <= MAX_NODES_PER_POOL:
        raise invalid_parameter(
            "agentPoolProfile.count", f"count must be in the range of {floor} to {MAX_NODES_PER_POOL} (inclusive)"
        )
    if props.get("enableAutoScaling"):
        low, high = _int(props, "minCount"), _int(props, "maxCount")
        if low is None or high is None:
            raise invalid_parameter("agentPoolProfile.minCount", "minCount and maxCount are required with autoscaling")
        if not floor <= low <= MAX_NODES_PER_POOL:
            raise invalid_parameter("agentPoolProfile.minCount", f"minCount must be between {floor} and 1000")
        if not 0 <= high <= MAX_NODES_PER_POOL:
            raise invalid_parameter("agentPoolProfile.maxCount", "maxCount must be between 0 and 1000")
        if low > high:
            raise invalid_parameter("agentPoolProfile.minCount", "minCount must be less than or equal to maxCount")
        if not low <= count <= high:
            raise invalid_parameter("agentPoolProfile.count", "count must be within minCount and maxCount")
    if previous is not None:
        for field in _IMMUTABLE_POOL_FIELDS:
            before, after = previous.get(field), props.get(field)
            if field == "scaleSetPriority":
                before, after = before or "Regular", after or "Regular"
            if str(before).lower() != str(after).lower():
                message = f"Changing property 'agentPoolProfile.{field}' is not allowed."
                raise ArmError(400, "PropertyChangeNotAllowed", message, target=f"agentPoolProfile.{field}")


def quota(*, family: str, location: str, limit: int, usage: int, required: int) -> None:
    """400 ``QuotaExceeded`` when ``usage + required`` vCPUs of ``family`` exceed ``limit``."""
    if usage + required <= limit:
        return
    message = (
        "Operation could not be completed as it results in exceeding approved "
        f"{family.replace(' ', '')} Cores "
        f"quota. Additional details - Deployment Model: Resource Manager, Location: {location}, Current Limit: "
        f"{limit}, Current Usage: {usage}, Additional Required: {required}, (Minimum) New Limit Required: "
        f"{usage + required}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP by specifying "
        "parameters listed in the 'Details' section for deployment to succeed."
    )
    raise ArmError(400, "QuotaExceeded", message)


def _etags(header: str) -> list[str]:
    """The entity tags of an If-Match / If-None-Match header, unquoted (``W/`` prefixes dropped)."""
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.append(tag)
    return tags


def preconditions(if_match: str | None, if_none_match: str | None, current: str | None) -> None:
    """412 unless the conditional headers hold for a resource whose eTag is ``current``
    (None when it does not exist). The SDK sends ``If-Match: "<etag>"`` with the quotes."""
    if if_match is not None:
        tags = _etags(if_match)
        if current is None or ("*" not in tags and current not in tags):
            raise precondition_failed(if_match, current)
    if if_none_match is not None and current is not None:
        tags = _etags(if_none_match)
        if "*" in tags or current in tags:
            raise precondition_failed("*" if "*" in tags else if_none_match, current)
