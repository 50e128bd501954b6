"""Workload identity for a cluster's log shipper: a user-assigned managed identity, a federated
identity credential that lets the cluster's Kubernetes service account sign in as it, and the
role "Storage Blob Data Contributor" on the logs container only. No key or secret anywhere:
the shipper exchanges its projected service-account token for an Entra token.

**One identity per Ray cluster**, not per cloud: an identity holds at most 20 federated
credentials, so a shared one would cap a cloud at 20 clusters; and deleting a cluster deletes
its identity, which revokes that cluster's write access at once, with no credential list to
edit under concurrent cluster creations. (All clusters of a cloud write to one container, so
the role is the same; the blob names are what the read side filters by.)

Names are pure functions of the cluster (``rayplane-<namespace>``, the role assignment's GUID
from scope and principal), so every step is create-or-get and a retried pass writes nothing
new. Deletion order on teardown: the role assignment, then the identity (its federated
credentials go with it); the logs stay for the retention.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import FederatedIdentityCredential, Identity

from rayplane.providers.azure.aks import classify, error_code

# Azure's built-in role "Storage Blob Data Contributor" (the built-in roles reference).
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
AUDIENCE = "api://AzureADTokenExchange"
SERVICE_ACCOUNT = "rayplane-logs"
CREDENTIAL = "ray-logs"
AUTHZ_VERSION = "2022-04-01"
_NAMESPACE = uuid.UUID("6f1c3c2e-52a5-4d8c-9a5f-2b0e0c7d9a11")


@dataclass(frozen=True)
class ShipperIdentity:
    """What the pods need: the identity's client id (the service account's annotation)."""

    name: str
    client_id: str
    principal_id: str
    tenant_id: str


def identity_name(namespace: str) -> str:
    return f"rayplane-{namespace}"[:128]


def subject(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


def assignment_name(scope: str, principal_id: str) -> str:
    """A GUID stable for (scope, principal): the same assignment on every retry."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope.lower()}|{principal_id.lower()}"))


class WorkloadIdentities:
    """One subscription's identities and role assignments (``azure-mgmt-msi``, ``azure-mgmt-authorization``)."""

    def __init__(
        self, credential: TokenCredential, subscription_id: str, *, arm_url: str, ca_bundle: str | None
    ) -> None:
        kwargs: dict[str, Any] = {"base_url": arm_url, "retry_backoff_factor": 0.2}
        if ca_bundle:
            kwargs["connection_verify"] = ca_bundle
        self.subscription_id = subscription_id
        self.msi = ManagedServiceIdentityClient(credential, subscription_id, **kwargs)
        self.authz = AuthorizationManagementClient(credential, subscription_id, api_version=AUTHZ_VERSION, **kwargs)

    def ensure(self, rg: str, region: str, namespace: str, issuer: str, scope: str) -> ShipperIdentity:
        """Identity, federated credential for the namespace's service account, and the role on ``scope``."""
        name = identity_name(namespace)
        try:
            try:
                found = self.msi.user_assigned_identities.get(rg, name)
            except ResourceNotFoundError:
                found = self.msi.user_assigned_identities.create_or_update(
                    rg, name, Identity(location=region, tags={"rayplane.io/purpose": "ray-logs"})
                )
        except Exception as exc:
            raise classify(exc, f"creating managed identity {name}") from exc
        identity = ShipperIdentity(name, str(found.client_id), str(found.principal_id), str(found.tenant_id))
        self._ensure_credential(rg, name, namespace, issuer)
        self._ensure_role(scope, identity.principal_id)
        return identity

    def _ensure_credential(self, rg: str, name: str, namespace: str, issuer: str) -> None:
        wanted = (issuer, subject(namespace), [AUDIENCE])
        try:
            try:
                fic = self.msi.federated_identity_credentials.get(rg, name, CREDENTIAL)
                if (fic.issuer, fic.subject, list(fic.audiences or [])) == wanted:
                    return
            except ResourceNotFoundError:
                pass
            self.msi.federated_identity_credentials.create_or_update(
                rg,
                name,
                CREDENTIAL,
                FederatedIdentityCredential(issuer=wanted[0], subject=wanted[1], audiences=wanted[2]),
            )
        except Exception as exc:
            raise classify(exc, f"writing the federated credential of {name}") from exc

    def _ensure_role(self, scope: str, principal_id: str) -> None:
        role = (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{BLOB_DATA_CONTRIBUTOR}"
        )
        body = RoleAssignmentCreateParameters(
            role_definition_id=role, principal_id=principal_id, principal_type="ServicePrincipal"
        )
        name = assignment_name(scope, principal_id)
        try:
            with contextlib.suppress(ResourceNotFoundError):
                self.authz.role_assignments.get(scope, name)
                return
            self.authz.role_assignments.create(scope, name, body)
        except HttpResponseError as exc:
            if error_code(exc) == "RoleAssignmentExists":
                return  # made by an earlier pass (or by hand): the same grant
            raise classify(exc, "assigning Storage Blob Data Contributor on the logs container") from exc
        except Exception as exc:
            raise classify(exc, "assigning Storage Blob Data Contributor on the logs container") from exc

    def remove(self, rg: str, namespace: str, scope: str | None) -> None:
        """The role assignment and the identity (with its federated credential); absent ones are fine."""
        name = identity_name(namespace)
        try:
            try:
                found = self.msi.user_assigned_identities.get(rg, name)
            except ResourceNotFoundError:
                return
            if scope:
                self.authz.role_assignments.delete(scope, assignment_name(scope, str(found.principal_id)))
            self.msi.user_assigned_identities.delete(rg, name)
        except Exception as exc:
            raise classify(exc, f"deleting managed identity {name}") from exc
