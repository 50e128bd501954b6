"""``rayplane clouds``: where clusters run, and connecting an Azure subscription.

Connecting a subscription is ``POST /v1/clouds``; the API answers VALIDATING and a worker
then checks Rayplane's access (a token for the customer's tenant, then a read of the resource
group in ARM), leaving the cloud READY or ERROR with Azure's code and what to do in
``status_reason``. For ``app_consent`` the answer carries the link an admin of the customer's
tenant opens to grant consent; after granting it, ``clouds validate`` checks again.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal

import typer

from cli.client import Cloud, RayplaneClient
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    OutputOption,
    YesOption,
    client,
    confirm,
    fail,
    fmt,
    handle_errors,
)
from cli.output import Column, age, duration, notice, out, render_list, render_one

app = typer.Typer(
    name="clouds",
    help="Where clusters run: this machine in dev mode, or your Azure subscriptions.\n\n"
    "Example: [bold]rayplane clouds add azure --subscription SUB --resource-group ml --region eastus2 --wait[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)

CloudArg = Annotated[str, typer.Argument(help="Cloud name or id (cld_…).", show_default=False)]
WaitOption = Annotated[bool, typer.Option("--wait", "-w", help="Wait until the access check has an answer.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait (then exit 5).")]
POLL_SECONDS = 1.0


def resolve_cloud(api: RayplaneClient, ref: str) -> Cloud:
    """The cloud named ``ref``, or with the id ``ref``."""
    if ref.startswith("cld_"):
        return api.get_cloud(ref)
    for cloud in api.list_clouds():
        if cloud["name"] == ref:
            return cloud
    fail(f"no cloud named {ref!r} (see `rayplane clouds list`)", EXIT_NOT_FOUND)


def cloud_fields(c: Cloud) -> list[tuple[str, object]]:
    """Rows of the detail view; an Azure cloud's subscription and access mode from its config."""
    config: dict[str, Any] = c.get("config") or {}
    status = c["status"] + (f": {c['status_reason']}" if c.get("status_reason") else "")
    rows: list[tuple[str, object]] = [
        ("Name", c["name"]),
        ("ID", c["id"]),
        ("Provider", c["provider"]),
        ("Status", status),
        ("Default", c.get("is_default")),
    ]
    if c["provider"] == "azure":
        rows += [
            ("Subscription", config.get("subscription_id")),
            ("Resource group", config.get("resource_group")),
            ("Region", config.get("region")),
            ("Tenant", config.get("tenant_id")),
            ("Access", config.get("auth_mode")),
            ("AKS", f"{config.get('aks_mode')} ({config.get('aks_cluster_name')})"),
            ("Durable logs", _durable_logs(config)),
            ("Consent link", c.get("admin_consent_url")),
        ]
    elif config.get("capacity"):
        rows.append(("Capacity", config["capacity"]))
    rows += [("Ray versions", c.get("ray_versions")), ("Created", f"{c['created_at']} ({age(c['created_at'])} ago)")]
    return rows


def _durable_logs(config: dict[str, Any]) -> str:
    if config.get("durable_logs") is False:
        return "off"
    return f"on, in {config['log_storage_account_id']}" if config.get("log_storage_account_id") else "on"


def wait_for_answer(api: RayplaneClient, cloud: Cloud, timeout: float) -> Cloud:
    """Poll until the access check is done; READY returns, ERROR raises with what to do."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while cloud["status"] == "VALIDATING":
        if time.monotonic() >= deadline:
            raise CliError(
                f"timed out after {duration(timeout)}: cloud {cloud['name']} is still VALIDATING"
                f" (the check goes on; see `rayplane clouds get {cloud['name']}`)",
                EXIT_TIMEOUT,
            )
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        cloud = api.get_cloud(cloud["id"])
    if cloud["status"] == "ERROR":
        reason = cloud.get("status_reason") or "no reason given"
        raise CliError(
            f"cloud {cloud['name']} cannot be used: {reason}."
            f" When that is fixed: rayplane clouds validate {cloud['name']} --wait",
            EXIT_FAILURE,
        )
    notice(f"cloud {cloud['name']} is {cloud['status']} (checked in {duration(time.monotonic() - started)})", "green")
    return cloud


def _consent_notice(cloud: Cloud) -> None:
    url = cloud.get("admin_consent_url")
    if url and cloud["status"] != "READY":
        tenant = (cloud.get("config") or {}).get("tenant_id")
        notice(f"An admin of tenant {tenant} grants Rayplane access by opening this link:\n  {url}")


def _default_name(resource_group: str) -> str:
    """``azure-ml-prod`` from a resource group name, within the API's name rules."""
    slug = re.sub(r"[^a-z0-9-]+", "-", resource_group.lower()).strip("-")
    return f"azure-{slug}"[:63].rstrip("-")


@app.command("list", epilog=EXIT_CODES_HELP)
@handle_errors
def list_(output: OutputOption = None) -> None:
    """List the clouds clusters can run on (--cloud takes a name or id from here).

    Example: [bold]rayplane clouds list[/bold]
    """
    columns = [
        Column("NAME", lambda c: c["name"]),
        Column("PROVIDER", lambda c: c["provider"]),
        Column("STATUS", lambda c: c["status"]),
        Column("DEFAULT", lambda c: "yes" if c["is_default"] else ""),
        Column("RAY VERSIONS", lambda c: ", ".join(c.get("ray_versions") or []), max_width=40),
        Column("ID", lambda c: c["id"]),
    ]
    with client() as api:
        render_list(list(api.list_clouds()), columns, fmt(output), empty="No clouds.")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def get(cloud: CloudArg, output: OutputOption = None) -> None:
    """Show one cloud: status (with Azure's error and what to do), subscription, access mode.

    Example: [bold]rayplane clouds get azure-ml-prod[/bold]
    """
    with client() as api:
        render_one(resolve_cloud(api, cloud), cloud_fields, fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def add(
    provider: Annotated[Literal["azure"], typer.Argument(help="azure (local clouds come by themselves in dev mode).")],
    subscription: Annotated[str, typer.Option(help="Azure subscription id.", metavar="GUID", show_default=False)],
    resource_group: Annotated[
        str, typer.Option(help="Resource group Rayplane works in.", metavar="NAME", show_default=False)
    ],
    region: Annotated[str, typer.Option(help="Azure region, e.g. eastus2.", metavar="REGION", show_default=False)],
    tenant: Annotated[
        str | None,
        typer.Option(help="Entra tenant id of the subscription (default: your tenant's).", metavar="GUID"),
    ] = None,
    auth_mode: Annotated[
        Literal["app_consent", "federated", "lighthouse"], typer.Option(help="How Rayplane gets in.")
    ] = "app_consent",
    aks_mode: Annotated[
        Literal["managed", "existing"], typer.Option(help="managed: Rayplane creates AKS; existing: adopt one.")
    ] = "managed",
    aks_cluster: Annotated[
        str | None, typer.Option(help="AKS cluster name (required with --aks-mode existing).", metavar="NAME")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Cloud name (default: azure-<resource group>).", metavar="NAME")
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Use it when a cluster names no cloud.")] = False,
    durable_logs: Annotated[
        bool,
        typer.Option(
            "--durable-logs/--no-durable-logs",
            help="Ship Ray pods' logs into a storage account in the subscription (needs the right to assign roles).",
        ),
    ] = True,
    log_storage_account: Annotated[
        str | None,
        typer.Option(
            help="An existing storage account (ARM id, same subscription) for the logs, instead of a new one.",
            metavar="ID",
        ),
    ] = None,
    wait_: WaitOption = False,
    timeout: TimeoutOption = 300,
    output: OutputOption = None,
) -> None:
    """Connect an Azure subscription: prints the admin-consent link, then (--wait) the answer.

    The access check reads the resource group in ARM with Rayplane's identity. With
    app_consent an admin of the subscription's tenant must first grant consent through the
    link printed; until then the cloud is ERROR, and `rayplane clouds validate NAME --wait`
    checks again. With --wait: exit 0 when READY, 1 with Azure's error and what to do.

    Example:
      [bold]rayplane clouds add azure --subscription 3a9e…-… --resource-group ml-prod \\
        --region eastus2 --tenant 0b7d…-… --wait[/bold]
    """
    if aks_mode == "existing" and not aks_cluster:
        fail("--aks-mode existing needs --aks-cluster NAME (the AKS cluster to adopt)", EXIT_USAGE)
    with client() as api:
        tenant_id = tenant or api.get_tenant().get("entra_tenant_id")
        if not tenant_id:
            fail("give --tenant: the Entra tenant id of the subscription (your tenant has none on record)", EXIT_USAGE)
        azure: dict[str, Any] = {
            "subscription_id": subscription,
            "resource_group": resource_group,
            "region": region,
            "tenant_id": tenant_id,
            "auth_mode": auth_mode,
            "aks_mode": aks_mode,
        }
        if aks_cluster:
            azure["aks_cluster_name"] = aks_cluster
        if not durable_logs:
            azure["durable_logs"] = False
        if log_storage_account:
            azure["log_storage_account_id"] = log_storage_account
        body = {"name": name or _default_name(resource_group), "provider": provider, "azure": azure, "default": default}
        cloud = api.create_cloud(body)
        notice(f"Added cloud {cloud['name']} ({cloud['id']}): {cloud['status']}")
        _consent_notice(cloud)
        if wait_:
            cloud = wait_for_answer(api, cloud, timeout)
        elif fmt(output) == "table":
            notice(f"See the answer with: rayplane clouds get {cloud['name']}", "dim")
    render_one(cloud, cloud_fields, fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def validate(
    cloud: CloudArg, wait_: WaitOption = False, timeout: TimeoutOption = 300, output: OutputOption = None
) -> None:
    """Check an Azure cloud's access again (after consent was granted or a role assigned).

    Example: [bold]rayplane clouds validate azure-ml-prod --wait[/bold]
    """
    with client() as api:
        found = api.validate_cloud(resolve_cloud(api, cloud)["id"])
        notice(f"Checking the access of cloud {found['name']} again")
        _consent_notice(found)
        if wait_:
            found = wait_for_answer(api, found, timeout)
    render_one(found, cloud_fields, fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def delete(cloud: CloudArg, yes: YesOption = False) -> None:
    """Remove a cloud (only one without live clusters); nothing in Azure is removed by this.

    Example: [bold]rayplane clouds delete azure-ml-prod --yes[/bold]
    """
    with client() as api:
        found = resolve_cloud(api, cloud)
        confirm(f"Remove cloud {found['name']} ({found['id']})?", yes)
        api.delete_cloud(found["id"])
    out().print(f"Removed cloud {found['name']} ({found['id']}).")
