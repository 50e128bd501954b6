"""AKS through azure-mgmt-containerservice: managed clusters, agent pools, kubeconfigs.

**LROs never block a worker.** Every write is started with :class:`StepPolling`, which looks
at the operation once per call instead of looping until it ends. The caller stores the
poller's continuation token in the cluster's provider state; the next reconcile (in this
worker or any other) resumes from the token with one more look. A worker killed between
the PUT and storing the token leaves no token: the next pass GETs the resource, finds it
``Creating`` and waits for it (a second PUT would answer ``OperationNotAllowed``), so a
pool is never created twice.

**Errors** are turned into the provider's two kinds with a message that names the Azure code
and what the user can do (:func:`classify`). The SDK itself already retries 408/429/5xx a
few times, honouring ``Retry-After``; what is left after that is retried by the reconciler.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.polling import LROPoller
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice.models import AgentPool, ManagedCluster
from azure.mgmt.core.polling.arm_polling import ARMPolling

from rayplane.providers.azure.advice import authorization_advice, entra_code, fit
from rayplane.providers.base import ProviderError, RetriableError, TerminalError

# Codes that mean "Azure has no capacity for this VM (priority) right now".
CAPACITY_CODES = frozenset(
    {"AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest", "AKSCapacityError"}
)
SPOT_FALLBACK_CODES = CAPACITY_CODES | {"SkuNotAvailable"}
_ADVICE = {
    "QuotaExceeded": "request a vCPU quota increase for this VM family and region in the Azure portal "
    "(Quotas), or choose a smaller or different VM size",
    "SkuNotAvailable": "this VM size is not offered in the cloud's region for this subscription; "
    "choose another size or region",
    "AllocationFailed": "Azure has no capacity for this VM size right now; Rayplane keeps retrying, "
    "or choose another size",
    "ZonalAllocationFailed": "Azure has no capacity for this VM size in the zone; Rayplane keeps retrying",
    "OverconstrainedAllocationRequest": "the VM constraints cannot be met right now; Rayplane keeps retrying",
    "AKSCapacityError": "AKS has no capacity in the region right now; Rayplane keeps retrying",
    "OperationNotAllowed": "another operation on this AKS resource is in progress; Rayplane retries when it ends",
    "InvalidAuthenticationTokenTenant": "check the cloud's Entra tenant id",
}
TERMINAL_CODES = frozenset({"QuotaExceeded", "SkuNotAvailable", "AuthorizationFailed", "InvalidParameter"})


def error_code(exc: HttpResponseError) -> str | None:
    """Azure's error code: from the ARM error body, else the HTTP status (``HTTP429``)."""
    code = exc.error.code if exc.error is not None else None
    if code:
        return str(code)
    status = exc.status_code or (exc.response.status_code if exc.response is not None else None)
    return f"HTTP{status}" if status else None


def classify(exc: Exception, what: str) -> ProviderError:
    """A provider error for an SDK exception, naming the code and the user's next step.

    Entra's refusals keep their AADSTS code (``AADSTS7000215``) as the error's code; ARM's
    ``AuthorizationFailed`` names the role assignment that fixes it (see
    :mod:`rayplane.providers.azure.advice`), placed before Azure's long message so that a
    truncated reason still says what to do. Both are terminal: only a change on the customer's
    or the operator's side helps, so retrying would only repeat the refusal.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and exc.status_code in (None, 400, 401):
        text = exc.message or str(exc)
        arm_code = exc.error.code if exc.error is not None else None
        if arm_code and entra_code(text) is None:
            # ARM's own 401 (InvalidAuthenticationTokenTenant, ExpiredAuthenticationToken...): keep its code.
            advice = _ADVICE.get(arm_code)
            detail = exc.error.message if exc.error is not None and exc.error.message else text
            return TerminalError(
                fit(f"{what} failed with Azure error {arm_code}" + (f": {advice}" if advice else ""), detail),
                code=arm_code,
            )
        aadsts = entra_code(text)
        first = text.splitlines()[0][:300] if text else ""
        return TerminalError(
            f"{what}: no Azure token ({first})", code=f"AADSTS{aadsts}" if aadsts else "AuthenticationFailed"
        )
    if isinstance(exc, ServiceRequestError):
        return RetriableError(f"{what}: cannot reach Azure ({exc})", code="ServiceRequestError")
    if not isinstance(exc, HttpResponseError):
        return RetriableError(f"{what}: {exc}", code=type(exc).__name__)
    code = error_code(exc) or "Unknown"
    detail = (exc.error.message if exc.error is not None else None) or exc.reason or str(exc)
    if code == "AuthorizationFailed":
        message = fit(f"{what} failed with Azure error {code}: {authorization_advice(detail)}", detail)
    else:
        advice = _ADVICE.get(code)
        message = f"{what} failed with Azure error {code}: {detail}" + (f" ({advice})" if advice else "")
    status = exc.status_code or 0
    if code in TERMINAL_CODES or (400 <= status < 500 and status not in (404, 408, 409, 412, 429)):
        return TerminalError(message, code=code)
    return RetriableError(message, code=code)


class StepPolling(ARMPolling):
    """ARM polling that takes a single look per call instead of waiting for the end.

    ``LROPoller`` runs ``run`` on a thread; with this method that thread does one status GET
    (and the final GET when the operation has just succeeded) and ends, so ``wait()`` returns
    at once and nothing keeps polling in the background.
    """

    def _poll(self) -> None:
        if not self.finished():
            self.update_status()
        if not self.finished():
            return
        super()._poll()  # finished: failure check and the final GET, no loop left


@dataclass(frozen=True)
class LroStep:
    """Where an LRO stands after one look: ``done`` with the resource, or its token."""

    done: bool
    token: str | None
    resource: dict[str, Any] | None = None


def step(poller: LROPoller[Any], what: str) -> LroStep:
    """Finish one look of ``poller``; raises a classified error when the operation failed."""
    try:
        poller.wait()
        if poller.status().lower() in ("succeeded",):
            result = poller.result()
            return LroStep(True, None, result.as_dict() if hasattr(result, "as_dict") else dict(result or {}))
        if poller.status().lower() in ("failed", "canceled", "cancelled"):
            poller.result()  # raises with the operation's error
        return LroStep(False, poller.continuation_token())
    except Exception as exc:
        raise classify(exc, what) from exc


class Aks:
    """One subscription's AKS API, with the SDK pointed at ``arm_url``."""

    def __init__(
        self, credential: TokenCredential, subscription_id: str, *, arm_url: str, ca_bundle: str | None
    ) -> None:
        # azure-core retries a status only 3 times by default; throttling in bursts needs a
        # few more, kept short (Retry-After is honoured) so a pass stays bounded. What is
        # still failing after that is retried by the reconciler with backoff.
        kwargs: dict[str, Any] = {
            "base_url": arm_url,
            "polling_interval": 0,
            "retry_total": 8,
            "retry_status": 6,
            "retry_backoff_factor": 0.2,
            "retry_backoff_max": 4,
        }
        if ca_bundle:
            kwargs["connection_verify"] = ca_bundle
        self.client = ContainerServiceClient(credential, subscription_id, **kwargs)

    def _polling(self) -> StepPolling:
        return StepPolling(0, path_format_arguments={"endpoint": self.client._config.base_url})

    # -- managed clusters ---------------------------------------------------------------
    def get_cluster(self, rg: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.client.managed_clusters.get(rg, name).as_dict()
            return result
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise classify(exc, f"reading AKS cluster {name}") from exc

    def put_cluster(self, rg: str, name: str, body: dict[str, Any], token: str | None) -> LroStep:
        what = f"creating AKS cluster {name}"
        try:
            poller = self.client.managed_clusters.begin_create_or_update(
                rg, name, ManagedCluster(body), polling=self._polling(), continuation_token=token
            )
        except Exception as exc:
            raise classify(exc, what) from exc
        return step(poller, what)

    def list_clusters(self, rg: str) -> list[dict[str, Any]]:
        try:
            return [c.as_dict() for c in self.client.managed_clusters.list_by_resource_group(rg)]
        except Exception as exc:
            raise classify(exc, f"listing AKS clusters in {rg}") from exc

    def user_kubeconfig(self, rg: str, name: str) -> str:
        """The ``clusterUser`` kubeconfig (YAML). Held in memory only by callers."""
        try:
            creds = self.client.managed_clusters.list_cluster_user_credentials(rg, name)
        except Exception as exc:
            raise classify(exc, f"reading the kubeconfig of AKS cluster {name}") from exc
        if not creds.kubeconfigs:
            raise RetriableError(f"AKS cluster {name} returned no kubeconfig", code="NoKubeconfig")
        value = creds.kubeconfigs[0].value
        raw = value if isinstance(value, bytes) else base64.b64decode(value or b"")
        return raw.decode("utf-8")

    # -- agent pools --------------------------------------------------------------------
    def get_pool(self, rg: str, cluster: str, pool: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.client.agent_pools.get(rg, cluster, pool).as_dict()
            return result
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise classify(exc, f"reading node pool {pool}") from exc

    def list_pools(self, rg: str, cluster: str) -> list[dict[str, Any]]:
        try:
            return [p.as_dict() for p in self.client.agent_pools.list(rg, cluster)]
        except Exception as exc:
            raise classify(exc, f"listing the node pools of {cluster}") from exc

    def put_pool(self, rg: str, cluster: str, pool: str, properties: dict[str, Any], token: str | None) -> LroStep:
        what = f"creating node pool {pool}"
        try:
            poller = self.client.agent_pools.begin_create_or_update(
                rg,
                cluster,
                pool,
                AgentPool({"properties": properties}),
                polling=self._polling(),
                continuation_token=token,
            )
        except Exception as exc:
            raise classify(exc, what) from exc
        return step(poller, what)

    def delete_pool(self, rg: str, cluster: str, pool: str, token: str | None) -> LroStep:
        what = f"deleting node pool {pool}"
        try:
            poller = self.client.agent_pools.begin_delete(
                rg, cluster, pool, polling=self._polling(), continuation_token=token
            )
        except ResourceNotFoundError:
            return LroStep(True, None)
        except Exception as exc:
            raise classify(exc, what) from exc
        return step(poller, what)
