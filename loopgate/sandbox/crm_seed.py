"""Seed the fake CRMs with a believable org: the policy's people, accounts, and leads of every
kind the example policy decides differently (hot and cold, regulated, students, personal mail,
owned and unowned). Deterministic for a given seed, so demos and benchmarks repeat.

Used by ``loopgate demo`` / ``serve --sandbox`` (a small org) and ``bench/sync.py`` (50,000).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.policy import Policy
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce

__all__ = ["SeedLead", "hubspot_owners", "salesforce_people", "seed_hubspot", "seed_leads", "seed_salesforce"]

INDUSTRIES = ["software", "fintech", "saas", "retail", "manufacturing", "banking", "healthcare", "internet", None]
TITLES = ["VP Sales", "Software Engineer", "Director of IT", "Head of Growth", "Student", "CEO", "Analyst", None]
SIZES = [12, 80, 150, 450, 900, 1800, 4000, 12000, None]
COUNTRIES = ["US", "US", "GB", "DE", "FR", "CA", "IN", None]
FIRST_NAMES = ["Ana", "Ben", "Cy", "Dee", "Eve", "Finn", "Gus", "Hana"]


@dataclass(frozen=True, slots=True)
class SeedLead:
    first_name: str
    last_name: str
    email: str
    title: str | None
    company: str
    domain: str
    industry: str | None
    employees: int | None
    country: str | None
    owner: str | None  # a policy rep id, or None


def seed_leads(count: int, reps: list[str], *, seed: int = 42, companies: int = 7000) -> list[SeedLead]:
    """``count`` leads over ``companies`` companies; every tenth is owned by one of ``reps``."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    out = []
    for i in range(count):
        company = i % companies
        personal = rng.random() < 0.08
        out.append(
            SeedLead(
                first_name=rng.choice(FIRST_NAMES),
                last_name=f"Lead{i}",
                email=f"p{i}@{'gmail.com' if personal else f'company{company}.com'}",
                title=rng.choice(TITLES),
                company=f"Company {company}",
                domain=f"company{company}.com",
                industry=rng.choice(INDUSTRIES),
                employees=rng.choice(SIZES),
                country=rng.choice(COUNTRIES),
                owner=reps[i % len(reps)] if reps and i % 10 == 0 else None,
            )
        )
    return out


def salesforce_people(fake: FakeSalesforce, policy: Policy) -> dict[str, str]:
    """A user for every person and a queue for every queue of the policy with a Salesforce id;
    returns policy id → 18-character Salesforce id."""
    people: dict[str, str] = {}
    for rep in policy.reps:
        if rep.crm.salesforce:
            people[rep.id] = fake.add_user(rep.name, id15=rep.crm.salesforce[:15], email=rep.email)
    for queue in policy.queues:
        if queue.crm.salesforce:
            people[queue.id] = fake.add_queue(queue.name or queue.id, id15=queue.crm.salesforce[:15])
    return people


def hubspot_owners(fake: FakeHubSpot, policy: Policy) -> dict[str, str]:
    """An owner for every person of the policy with a HubSpot id; returns policy id → owner id."""
    owners: dict[str, str] = {}
    for rep in policy.reps:
        if rep.crm.hubspot:
            first, _, last = rep.name.partition(" ")
            owners[rep.id] = fake.add_owner(rep.crm.hubspot, rep.email or f"{rep.id}@example.test", first, last)
    return owners


def _reps(policy: Policy, system: str) -> dict[str, str]:
    return {r.id: getattr(r.crm, system) for r in policy.reps if getattr(r.crm, system) and "rep" in r.roles}


def seed_salesforce(
    fake: FakeSalesforce,
    policy: Policy,
    *,
    leads: int,
    accounts: int = 1000,
    seed: int = 42,
    start: datetime | None = None,
) -> dict[str, str]:
    """Users and queues of the policy, ``accounts`` accounts and ``leads`` leads (four per
    second of ``SystemModstamp``, so pages split ties), every fifth lead a campaign member
    (every other one of those responded). Returns policy id → Salesforce id."""
    people = salesforce_people(fake, policy)
    base = start or datetime(2026, 11, 1, tzinfo=UTC)
    for a in range(accounts):
        fake.create("Account", Name=f"Company {a}", Website=f"company{a}.com", NumberOfEmployees=500,
                    Loopgate_Strategic__c=a % 50 == 0, Loopgate_Tier__c="tier1" if a % 5 == 0 else None,
                    SystemModstamp=base)  # fmt: skip
    reps = list(_reps(policy, "salesforce"))
    campaigns = [fake.add_campaign(name, kind, SystemModstamp=base) for name, kind in
                 (("Webinar", "Webinar"), ("Summit", "Conference"), ("Expo", "Trade Show"))]  # fmt: skip
    for i, lead in enumerate(seed_leads(leads, reps, seed=seed)):
        fields: dict[str, Any] = {
            "FirstName": lead.first_name, "LastName": lead.last_name, "Email": lead.email, "Title": lead.title,
            "Company": lead.company, "Website": lead.domain, "Industry": lead.industry,
            "NumberOfEmployees": lead.employees, "Country": lead.country, "LeadSource": "web", "Status": "Open",
            "OwnerId": people.get(lead.owner) if lead.owner else None,
            "SystemModstamp": base + timedelta(seconds=i // 4),
        }  # fmt: skip
        lead_id = fake.create("Lead", fields)
        if i % 5 == 0:
            fake.add_member(campaigns[i // 5 % 3], lead_id=lead_id, responded=i % 10 == 0,
                            responded_on=(base - timedelta(days=i % 14)).date(),
                            SystemModstamp=fields["SystemModstamp"])  # fmt: skip
    return people


def seed_hubspot(
    fake: FakeHubSpot, policy: Policy, *, contacts: int, companies: int = 1000, seed: int = 42,
    start: datetime | None = None,
) -> dict[str, str]:  # fmt: skip
    """Owners of the policy, ``companies`` companies (one import: a single timestamp) and
    ``contacts`` contacts (three per millisecond). Returns policy id → HubSpot owner id."""
    owners = _reps(policy, "hubspot")
    for rep in policy.reps:
        if rep.id in owners:
            first, _, last = rep.name.partition(" ")
            fake.add_owner(owners[rep.id], rep.email or f"{rep.id}@example.test", first, last)
    base = start or datetime(2026, 11, 1, tzinfo=UTC)
    for a in range(companies):
        fake.create("companies", name=f"Company {a}", domain=f"company{a}.com", numberofemployees="500",
                    loopgate_strategic="true" if a % 50 == 0 else "false", modified=base)  # fmt: skip
    for i, lead in enumerate(seed_leads(contacts, list(owners), seed=seed)):
        fake.create(
            "contacts",
            {
                "firstname": lead.first_name, "lastname": lead.last_name, "email": lead.email,
                "jobtitle": lead.title, "company": lead.company, "website": lead.domain, "industry": lead.industry,
                "numemployees": lead.employees, "country": lead.country, "lifecyclestage": "lead",
                "hubspot_owner_id": owners.get(lead.owner) if lead.owner else None,
            },
            modified=base + timedelta(milliseconds=i // 3 * 7),
        )  # fmt: skip
    return owners
