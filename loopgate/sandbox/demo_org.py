"""The sandbox org of ``loopgate demo`` and ``loopgate serve --sandbox``: both fake CRMs seeded
with a believable company's inbound funnel, so every path of the loop shows up in one run.

What is in it, and why:

* the policy's people as Salesforce users and HubSpot owners (12 reps in 3 teams, one out of
  office — :file:`demo_policy.yaml`);
* accounts/companies, a few of them **strategic** and owned by a rep (→ routed to the account
  owner and escalated), a few **customers**;
* leads split over the two CRMs (~55 % Salesforce, ~45 % HubSpot) across every segment, with
  **regulated industries** (banking, healthcare, insurance), **missing data** (no country, no
  company), students and personal mail (→ suppressed), C-level titles (→ VIP);
* **duplicates across the two CRMs** — the same person in both, owned by different reps (→
  ``duplicate_ownership``);
* **campaign responses** on about a quarter of the Salesforce leads (webinars, a conference, a
  trade show, an email campaign; some members never responded): Salesforce intent comes from
  them; **activity dates** on about a third of the HubSpot contacts (last email open and click,
  last form submission, last site visit): HubSpot intent comes from those;
* **hostile strings** in names and companies (Slack mentions, HTML, mrkdwn links): the Slack
  cards and the HTML report must show them as text, never act on them.

Deterministic for a seed: two demos of the same size show the same figures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.leads import parse_time
from core.policy import Policy
from loopgate.sandbox.crm_seed import hubspot_owners, salesforce_people
from loopgate.sandbox.hubspot import FakeHubSpot, hubspot_time
from loopgate.sandbox.salesforce import FakeSalesforce

__all__ = ["HOSTILE", "SeededOrg", "seed_demo_org"]

# every one of these must reach Slack and the report as inert text
HOSTILE = [
    "<!channel> urgent",
    "<script>alert('x')</script>",
    "@here Bobby",
    "Robert'); DROP TABLE leads;--",
    "<https://evil.test|Click me>",
    "*bold* _it_ ~gone~ `code`",
    "Tom & Jerry <ltd>",
    "\u202eRTL override",
]
FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Inés", "Jonas", "Kemi", "Liam", "Mia",
         "Noah", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoe"]  # fmt: skip
LAST = ["Smith", "García", "Müller", "Nguyen", "Okafor", "Rossi", "Tanaka", "Kowalski", "Dubois", "Patel", "Silva",
        "Johansson", "O'Brien", "Haddad", "Kim", "Novak"]  # fmt: skip
WORDS = ["Apex", "Bright", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
         "Kite", "Lumen", "Meridian", "Nimbus", "Orbit", "Pioneer", "Quartz", "Riverside", "Summit", "Tidal",
         "Vertex"]  # fmt: skip
SUFFIX = ["Labs", "Systems", "Health", "Bank", "Logistics", "Analytics", "Cloud", "Retail", "Insurance", "Works"]
INDUSTRIES = ["software", "software", "software", "saas", "saas", "fintech", "internet", "internet", "retail",
              "retail", "manufacturing", "manufacturing", "logistics", "education", "media", "banking",
              "healthcare"]  # fmt: skip
TITLES = ["VP Sales", "Head of Growth", "Director of IT", "Software Engineer", "Analyst", "Marketing Manager",
          "VP Marketing", "Head of Operations", "Sales Manager", "Student", "Operations Lead", "Director of Sales",
          "Intern", "CTO", "Product Manager"]  # fmt: skip
SIZES = [8, 25, 60, 120, 180, 250, 400, 800, 1500, 2500, 6000, 15000]
COUNTRIES = ["US", "US", "US", "CA", "GB", "DE", "FR", "NL", "SE", "IN", "BR", "AU"]
SOURCES = ["web", "web", "webinar", "content", "partner_referral", "event", "marketplace", "paid_search"]
PERSONAL = ["gmail.com", "yahoo.com", "outlook.com"]


@dataclass
class SeededOrg:
    """What was seeded: record ids per CRM and the leads meant to show each case."""

    salesforce_leads: list[str] = field(default_factory=list)
    hubspot_contacts: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # emails present in both CRMs
    hostile: list[str] = field(default_factory=list)  # CRM ids whose name or company is hostile
    strategic_domains: list[str] = field(default_factory=list)

    @property
    def leads(self) -> int:
        return len(self.salesforce_leads) + len(self.hubspot_contacts)


@dataclass(frozen=True)
class _Company:
    name: str
    domain: str
    industry: str
    employees: int
    country: str
    strategic: bool
    customer: bool
    owner: str | None  # policy rep id


def _companies(rng: random.Random, count: int, reps: list[str], ent_reps: list[str]) -> list[_Company]:
    out = []
    for i in range(count):
        name = f"{rng.choice(WORDS)} {rng.choice(SUFFIX)}"
        strategic = i % 40 == 0
        customer = i % 25 == 7
        owner = rng.choice(ent_reps) if strategic else (rng.choice(reps) if customer else None)
        employees = rng.choice(SIZES[8:]) if strategic else rng.choice(SIZES)
        out.append(_Company(f"{name} {i}", f"{name.lower().replace(' ', '')}{i}.test", rng.choice(INDUSTRIES),
                            employees, rng.choice(COUNTRIES), strategic, customer, owner))  # fmt: skip
    return out


def _person(rng: random.Random, i: int, company: _Company) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    personal = rng.random() < 0.07
    domain = rng.choice(PERSONAL) if personal else company.domain
    person: dict[str, Any] = {
        "first": first, "last": last, "email": f"{first.lower()}.{i}@{domain}", "title": rng.choice(TITLES),
        "company": company.name, "domain": company.domain, "industry": company.industry,
        "employees": company.employees, "country": company.country, "source": rng.choice(SOURCES),
    }  # fmt: skip
    roll = rng.random()
    if roll < 0.05:
        person["country"] = None  # missing data
    elif roll < 0.08:
        person["company"] = None
    elif roll < 0.10:
        person["employees"] = None
        person["industry"] = None
    return person


def seed_demo_org(
    sf: FakeSalesforce, hs: FakeHubSpot, policy: Policy, *, leads: int = 2000, start: datetime, seed: int = 7
) -> SeededOrg:
    """Seed both CRMs with ``leads`` leads in total (duplicates counted once per CRM), created
    over the hour before ``start``."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    reps = [r.id for r in policy.reps if "rep" in r.roles]
    ent = [r.id for r in policy.reps if r.team == "ent"] or reps
    sf_people, hs_owners = salesforce_people(sf, policy), hubspot_owners(hs, policy)
    companies = _companies(rng, max(leads // 6, 20), reps, ent)
    org = SeededOrg(strategic_domains=[c.domain for c in companies if c.strategic])
    for c in companies:
        sf.create("Account", Name=c.name, Website=c.domain, NumberOfEmployees=c.employees, Industry=c.industry,
                  Type="Customer" if c.customer else "Prospect", OwnerId=sf_people.get(c.owner or ""),
                  Loopgate_Strategic__c=c.strategic, Loopgate_Tier__c="tier1" if c.strategic else None,
                  SystemModstamp=start - timedelta(days=30))  # fmt: skip
        hs.create("companies", name=c.name, domain=c.domain, numberofemployees=str(c.employees),
                  industry=c.industry, hubspot_owner_id=hs_owners.get(c.owner or ""),
                  loopgate_strategic="true" if c.strategic else "false",
                  modified=start - timedelta(days=30))  # fmt: skip
    duplicates = max(leads // 40, 2)
    people = leads - duplicates
    for i in range(people):
        company = companies[rng.randrange(len(companies))]
        person = _person(rng, i, company)
        if i % 97 == 13:  # a hostile name or company, now and then
            person["last" if i % 2 else "company"] = HOSTILE[(i // 97) % len(HOSTILE)]
        at = start - timedelta(seconds=(people - i) * 3600 // max(people, 1) + 1)
        in_salesforce = rng.random() < 0.55
        owner = rng.choice(reps) if rng.random() < 0.08 else None  # already owned in the CRM
        is_duplicate = i < duplicates * 7 and i % 7 == 0  # the same person in both CRMs, two owners
        record = _create(sf, hs, person, at, owner, sf_people, hs_owners, salesforce=in_salesforce or is_duplicate)
        (org.salesforce_leads if in_salesforce or is_duplicate else org.hubspot_contacts).append(record)
        if is_duplicate:
            other = rng.choice([r for r in reps if r != owner])
            twin = _create(sf, hs, person, at, other, sf_people, hs_owners, salesforce=False)
            org.hubspot_contacts.append(twin)
            org.duplicates.append(person["email"])
            if owner is None:
                sf.update("Lead", record, OwnerId=sf_people[rng.choice([r for r in reps if r != other])],
                          SystemModstamp=at)  # fmt: skip
        if person["last"] in HOSTILE or person["company"] in HOSTILE:
            org.hostile.append(record)
    _campaign_responses(sf, org.salesforce_leads, start, random.Random(seed + 1))  # noqa: S311 - sample data
    _contact_activity(hs, org.hubspot_contacts, start, random.Random(seed + 2))  # noqa: S311 - sample data
    return org


CAMPAIGNS = [("Q4 product webinar", "Webinar"), ("RevOps Summit", "Conference"), ("SaaS Expo booth", "Trade Show"),
             ("November newsletter", "Email")]  # fmt: skip


# a contact's activity dates (connectors.hubspot.records.INTENT_PROPERTIES) and how often each
# is set on a contact that has any: opens are common, form submissions rare
ACTIVITY = [("hs_email_last_open_date", 0.8), ("hs_analytics_last_visit_timestamp", 0.6),
            ("hs_email_last_click_date", 0.35), ("recent_conversion_date", 0.2)]  # fmt: skip


def _contact_activity(hs: FakeHubSpot, contacts: list[str], start: datetime, rng: random.Random) -> None:
    """About a third of the HubSpot contacts have engaged in the three weeks before ``start``:
    HubSpot keeps the latest date of each kind on the contact itself (their own random stream:
    the contacts stay as they were, and keep their modification date)."""
    for contact in contacts:
        if rng.random() >= 1 / 3:
            continue
        properties: dict[str, Any] = {}
        for name, share in ACTIVITY:
            if rng.random() < share:
                ago = timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 1439))
                properties[name] = hubspot_time(start - ago)
        if "recent_conversion_date" in properties:
            properties["recent_conversion_event_name"] = "Contact us"
        if properties:
            modified = hs.get("contacts", contact)["lastmodifieddate"]
            hs.update("contacts", contact, properties, modified=parse_time(modified))


def _campaign_responses(sf: FakeSalesforce, leads: list[str], start: datetime, rng: random.Random) -> None:
    """About a quarter of the Salesforce leads are campaign members, most of them responded in
    the three weeks before ``start`` (their own random stream: the leads stay as they were)."""
    campaigns = [sf.add_campaign(name, kind, SystemModstamp=start - timedelta(days=30)) for name, kind in CAMPAIGNS]
    for lead in leads:
        if rng.random() >= 0.25:
            continue
        stamp = sf.get("Lead", lead)["SystemModstamp"]
        responded = rng.random() < 0.75
        on = (start - timedelta(days=rng.randint(0, 20))).date()
        sf.add_member(rng.choice(campaigns), lead_id=lead, responded=responded, responded_on=on, SystemModstamp=stamp)


def _create(
    sf: FakeSalesforce,
    hs: FakeHubSpot,
    p: dict[str, Any],
    at: datetime,
    owner: str | None,
    sf_people: dict[str, str],
    hs_owners: dict[str, str],
    *,
    salesforce: bool,
) -> str:
    if salesforce:
        return sf.create("Lead", FirstName=p["first"], LastName=p["last"], Email=p["email"], Title=p["title"],
                         Company=p["company"], Website=p["domain"], Industry=p["industry"],
                         NumberOfEmployees=p["employees"], Country=p["country"], LeadSource=p["source"],
                         Status="Open", OwnerId=sf_people.get(owner or ""), SystemModstamp=at)  # fmt: skip
    return hs.create("contacts", {
        "firstname": p["first"], "lastname": p["last"], "email": p["email"], "jobtitle": p["title"],
        "company": p["company"], "website": p["domain"], "industry": p["industry"],
        "numemployees": p["employees"], "country": p["country"], "hs_analytics_source": p["source"],
        "lifecyclestage": "lead", "hubspot_owner_id": hs_owners.get(owner or ""),
    }, modified=at)  # fmt: skip
