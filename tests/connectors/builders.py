"""Builders for CRM test worlds: a fake org or portal holding the example policy's people,
leads with sensible defaults, and connectors wired to the fakes with instant retries."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.hubspot import HubSpotAuth, HubSpotConnector
from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceAuth, SalesforceConnector, http_session
from core.policy import LoadedPolicy
from loopgate.sandbox.crm_seed import hubspot_owners, salesforce_people
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce

_n = itertools.count(1)


class Sleeps(list[float]):
    """Records waits instead of sleeping, so retry tests take no time."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fast_retry(sleeps: Sleeps | None = None, attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base=0.01, cap=0.05, sleep=sleeps if sleeps is not None else Sleeps())


# --- Salesforce ----------------------------------------------------------------------------------


def seed_salesforce_people(fake: FakeSalesforce, loaded: LoadedPolicy) -> dict[str, str]:
    """Users and queues for every rep/queue of the policy with a Salesforce id; returns
    policy id → 18-character CRM id."""
    return salesforce_people(fake, loaded.policy)


def sf_lead(**overrides: Any) -> dict[str, Any]:
    """A Salesforce Lead's fields: a mid-market software engineer in the US, unowned (decided "auto")."""
    n = next(_n)
    fields: dict[str, Any] = {
        "FirstName": "Sam",
        "LastName": f"Lead{n}",
        "Email": f"sam{n}@company{n}.com",
        "Title": "Software Engineer",
        "Company": f"Company {n}",
        "Website": f"company{n}.com",
        "Industry": "software",
        "NumberOfEmployees": 800,
        "Country": "US",
        "LeadSource": "web",
        "Status": "Open",
    }
    fields.update(overrides)
    return fields


def salesforce_connector(
    fake: FakeSalesforce, loaded: LoadedPolicy, *, retry: RetryPolicy | None = None, **auth: Any
) -> SalesforceConnector:
    creds = {"instance_url": fake.url, "access_token": fake.access_token, **auth}
    return SalesforceConnector(
        SalesforceAuth(**creds),
        http_session(fake.ca_bundle),
        field_map=loaded.policy.writeback.salesforce,
        retry=retry or fast_retry(),
    )


# --- HubSpot -------------------------------------------------------------------------------------


def seed_hubspot_people(fake: FakeHubSpot, loaded: LoadedPolicy) -> dict[str, str]:
    return hubspot_owners(fake, loaded.policy)


def hs_contact(**overrides: Any) -> dict[str, Any]:
    """A HubSpot contact's properties, mirroring :func:`sf_lead`."""
    n = next(_n)
    props: dict[str, Any] = {
        "firstname": "Sam",
        "lastname": f"Contact{n}",
        "email": f"sam{n}@firm{n}.com",
        "jobtitle": "Software Engineer",
        "company": f"Firm {n}",
        "website": f"firm{n}.com",
        "industry": "software",
        "numemployees": "800",
        "country": "US",
        "lifecyclestage": "lead",
    }
    props.update(overrides)
    return props


def hubspot_connector(
    fake: FakeHubSpot,
    loaded: LoadedPolicy,
    *,
    page_size: int = 200,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
    token: str = "pat-sandbox-token",  # noqa: S107 - the fake's sandbox token
    search_per_second: float = 0,
    **auth: Any,
) -> HubSpotConnector:
    return HubSpotConnector(
        HubSpotAuth(access_token=token, base_url=fake.url, **auth),
        field_map=loaded.policy.writeback.hubspot,
        retry=retry or fast_retry(),
        page_size=page_size,
        search_per_second=search_per_second,
        clock=clock,
    )
