"""``loopgate crm setup hubspot|salesforce``: create what loopgate needs in the CRM.

HubSpot: the ``loopgate`` property group and properties, through the API, idempotently (a
second run reads and changes nothing). Salesforce: a Metadata API directory for the custom
fields and a permission set, plus the commands to deploy it (custom fields are metadata that an
admin deploys, not data loopgate can create).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import make_url

from connectors.hubspot import HubSpotConnector
from connectors.hubspot.setup import ensure_properties
from connectors.salesforce.metadata import deploy_instructions, write_metadata
from core.errors import StoreError
from core.policy import LoadedPolicy
from loopgate import crm as crm_jobs
from loopgate.cli.console import err, out
from loopgate.cli.crm_errors import crm_errors
from loopgate.settings import ConfigError, Settings, load_settings
from loopgate.wiring import active_policy, open_database, read_policy

__all__ = ["register"]

crm_app = typer.Typer(help="CRM setup.", no_args_is_help=True, add_completion=False)


@crm_app.command("setup")
def setup(
    system: Annotated[str, typer.Argument(help="hubspot or salesforce")],
    policy: Annotated[Path | None, typer.Option(help="Policy whose writeback field names to use.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Salesforce: where to write the metadata.")] = Path(
        "loopgate-salesforce-metadata"
    ),
) -> None:
    """Create the loopgate fields in HubSpot, or write deployable metadata for Salesforce."""
    if system not in ("hubspot", "salesforce"):
        raise typer.BadParameter(f"'{system}' is not hubspot or salesforce", param_hint="SYSTEM")
    settings = load_settings()
    loaded = _setup_policy(settings, policy)
    field_map = (dict(getattr(loaded.policy.writeback, system)) or None) if loaded is not None else None
    if system == "hubspot":
        _setup_hubspot(settings, loaded, field_map)
    else:
        written = write_metadata(out_dir, field_map)
        for written_path in written.written:
            out.print(f"wrote {written_path}")
        out.print(f"salesforce: {len(written.written)} files written, {len(written.unchanged)} unchanged in {out_dir}")
        out.print(deploy_instructions(out_dir))


def _setup_policy(settings: Settings, explicit: Path | None) -> LoadedPolicy | None:
    """The policy whose field names to create: ``--policy``, else the one sync and write-back
    use (the published champion, else ``LOOPGATE_POLICY``). Setup often comes before the
    store exists, so a store that is not there (or not migrated yet) is no error here."""
    if explicit is not None:
        return read_policy(explicit)
    url = make_url(settings.loopgate_database_url)
    there = url.get_backend_name() != "sqlite" or (
        url.database not in (None, "", ":memory:") and Path(url.database).exists()
    )
    if there:
        try:
            db = open_database(settings)
        except StoreError:
            pass
        else:
            try:
                loaded = active_policy(db, settings)
            except ConfigError:
                loaded = None
            finally:
                db.dispose()
            if loaded is not None:
                err.print(f"using the policy that decides now, version {loaded.version}")
                return loaded
    if settings.loopgate_policy is not None:
        return read_policy(settings.loopgate_policy, setting="LOOPGATE_POLICY")
    err.print("no policy given, published or in LOOPGATE_POLICY: using loopgate's default field names")
    return None


def _setup_hubspot(settings: Settings, loaded: LoadedPolicy | None, field_map: dict[str, str] | None) -> None:
    with crm_errors():
        if loaded is not None:
            connector = crm_jobs.hubspot_connector(settings, loaded)
        else:
            connector = HubSpotConnector(crm_jobs.hubspot_auth(settings), field_map={})
        report = ensure_properties(connector, field_map)
    for name in report.created:
        out.print(f"created {name}")
    for name in report.updated:
        out.print(f"updated {name}")
    out.print(
        f"hubspot: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} already as specified"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(crm_app, name="crm")
