"""Chaos harness: real ``loopgate`` processes against the fakes, killed with SIGKILL at seeded
random moments, restarted, and judged at the end from what the fakes saw and the store holds.

A *world* is one fake CRM (a HubSpot portal or a Salesforce org) recording every field a
write-back changed, with the value it replaced; a fake Slack workspace; and one database.
Processes are ``python -m loopgate sync --crm <crm>`` (CRM reads and decisions) and ``python -m
loopgate serve --no-scheduler`` (Slack outbox, CRM write-back, the bot's HTTP front taking
Approve clicks). Between runs, people work the CRM: new leads (HubSpot contacts, Salesforce
Leads), edited leads, leads showing intent (a HubSpot email click; a Salesforce campaign
response, which leaves the Lead itself unchanged), and reps who change a lead's owner by hand. The world is the same for
both CRMs; only the recording fake (:class:`RecordingCrm`) knows the CRM's names and API.

The checker (:func:`check`) counts, from the fakes' logs and the store:

* **lost**: a CRM lead without a stored lead, a lead whose latest content was never decided,
  an effect still waiting in the outbox (or dead) after recovery, a pending review with no
  Slack message, a stored Slack message the workspace does not have, a lead whose CRM fields do
  not show its latest decision, an acknowledged Approve click that left its decision pending,
  an intent event the CRM holds that the stored lead does not;
* **duplicated**: a Slack message posted twice for one key, a lead decided more often than its
  content changed, a stored lead with more intent events than the CRM holds, a CRM field changed more often than the lead was decided and reviewed;
* **clobbered**: a write-back that changed an owner a person had set in the CRM.

Same-value CRM writes (a batch repeated after a crash before its outcome was stored) are
idempotent; they are counted in ``idempotent_repeats``, not as duplicates.

Used by ``tests/reliability`` (short form) and ``bench/chaos.py`` (full form).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select

from bot import ids
from connectors.hubspot.records import INTENT_PROPERTIES
from core.policy import LoadedPolicy, Policy, parse_policy
from core.salesforce_ids import salesforce_id18
from core.store.db import Database
from core.store.models import CrmConflict, Decision, Lead, OutboxRow, Review, SlackMessage
from core.store.records import lead_value
from loopgate.sandbox.crm_seed import salesforce_people
from loopgate.sandbox.http import FakeRequest, FakeResponse, LoggedRequest
from loopgate.sandbox.hubspot import FakeHubSpot, hubspot_time
from loopgate.sandbox.salesforce import FakeSalesforce
from loopgate.sandbox.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
HUBSPOT_TOKEN = "pat-chaos-4f1d9e0c-secret"  # the fake's token, grepped for in the logs
OWNER_FIELD = "hubspot_owner_id"
CRMS = ("hubspot", "salesforce")
SLACK_SCOPES = ["chat:write", "im:write", "im:history", "channels:history", "groups:history", "users:read",
                "commands", "files:write"]  # fmt: skip
_TITLES = ["VP Sales", "Director of IT", "Analyst"]


# --- CRMs that remember what each write changed ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldWrite:
    """One field of one record in one write-back call: what it held before and what was sent."""

    record: str
    field: str
    old: Any
    new: Any
    at: float

    @property
    def changed(self) -> bool:
        return self.old != self.new


class RecordingCrm(Protocol):
    """What the harness needs of a fake CRM: people's work on leads, and the log of what
    write-back changed (``writes``) and which owners people set by hand (``human_edits``)."""

    name: str  # the CRM as ``loopgate sync --crm`` and ``Lead.source`` name it
    owner_field: str
    writes: list[FieldWrite]
    human_edits: list[tuple[str, str, float]]  # record, owner, when
    latency: float
    requests: list[LoggedRequest]

    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def env(self) -> dict[str, str]: ...
    def secrets(self) -> list[str]: ...
    def seed_people(self, policy: Policy) -> dict[str, str]: ...
    def new_lead(self, k: int, *, regulated: bool, employees: int) -> str: ...
    def edit_title(self, record: str, title: str) -> None: ...
    def show_intent(self, record: str) -> None: ...
    def intent_events(self, record: str) -> int: ...
    def fields(self, record: str) -> dict[str, Any]: ...
    def title(self, record: str) -> str | None: ...
    def owner(self, record: str) -> str | None: ...
    def human_owner(self, record: str, owner: str) -> None: ...
    def overwrite(self, record: str, values: dict[str, Any]) -> None: ...


class RecordingHubSpot(FakeHubSpot):
    """The fake portal, plus a log of field-level effects of every batch update and of every
    owner a person set by hand (``human_owner``). Leads are contacts."""

    owner_field = OWNER_FIELD

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes: list[FieldWrite] = []
        self.human_edits: list[tuple[str, str, float]] = []
        self._routes = [
            (m, p, self._recorded_update if name.endswith("batch/update/?$") else fn, name)
            for m, p, fn, name in self._routes
        ]

    def _recorded_update(self, req: FakeRequest) -> FakeResponse:
        object_type = req.match["type"]
        with self._data:
            try:
                inputs = (req.json() or {}).get("inputs") or []
            except ValueError:
                inputs = []
            before = {
                str(i.get("id")): dict(self.objects[object_type].get(str(i.get("id")), {}).get("properties", {}))
                for i in inputs
            }
            response = self._batch_update(req)
            if response.status in (200, 207):
                applied = {str(r["id"]) for r in (response.body or {}).get("results", [])}
                now = time.time()
                for item in inputs:
                    record = str(item.get("id"))
                    if record not in applied:
                        continue
                    for key, value in (item.get("properties") or {}).items():
                        new = None if value is None else str(value)
                        self.writes.append(FieldWrite(record, key, before[record].get(key), new, now))
            return response

    def env(self) -> dict[str, str]:
        return {"HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN, "HUBSPOT_BASE_URL": self.url, "HUBSPOT_SEARCH_PER_SECOND": "5"}

    def secrets(self) -> list[str]:
        return [HUBSPOT_TOKEN]

    def seed_people(self, policy: Policy) -> dict[str, str]:
        owners = {}
        for rep in policy.reps:
            if rep.crm.hubspot:
                first, _, last = rep.name.partition(" ")
                owners[rep.id] = self.add_owner(rep.crm.hubspot, rep.email or "", first, last)
        return owners

    def new_lead(self, k: int, *, regulated: bool, employees: int) -> str:
        return self.create("contacts", {
            "firstname": "Sam", "lastname": f"Chaos{k}", "email": f"sam{k}@firm{k}.com",
            "jobtitle": "Software Engineer", "company": f"Firm {k}", "website": f"firm{k}.com",
            "industry": "banking" if regulated else "software", "numemployees": str(employees), "country": "US",
            "lifecyclestage": "lead",
        })  # fmt: skip

    def edit_title(self, record: str, title: str) -> None:
        self.update("contacts", record, jobtitle=title)

    def show_intent(self, record: str) -> None:
        """The contact clicks a marketing email: HubSpot keeps the latest click's date."""
        self.update("contacts", record, hs_email_last_click_date=hubspot_time(self.now()))

    def intent_events(self, record: str) -> int:
        props = self.objects["contacts"][record]["properties"]
        return sum(1 for name in INTENT_PROPERTIES if props.get(name))

    def fields(self, record: str) -> dict[str, Any]:
        return dict(self.get("contacts", record))

    def title(self, record: str) -> str | None:
        return self.get("contacts", record).get("jobtitle")

    def owner(self, record: str) -> str | None:
        return self.get("contacts", record).get(OWNER_FIELD)

    def human_owner(self, record: str, owner: str) -> None:
        """A rep reassigns the contact in HubSpot (loopgate must never overwrite this)."""
        with self._data:
            self.update("contacts", record, {OWNER_FIELD: owner})
            self.human_edits.append((record, owner, time.time()))

    def overwrite(self, record: str, values: dict[str, Any]) -> None:
        """Someone (a person, another integration) sets fields of the contact."""
        self.update("contacts", record, values)


class RecordingSalesforce(FakeSalesforce):
    """The fake org, plus a log of field-level effects of every ``composite/sobjects`` PATCH and
    of every owner a person set by hand. Leads are Leads; new ones belong to the inbound queue,
    as web-to-lead leave them. Query pages are small (Salesforce may return fewer rows than
    asked), so ties on ``SystemModstamp`` — a second-precision stamp every record created or
    written back in the same second shares — fall across page boundaries; ``stamps`` keeps
    which Leads were given each stamp."""

    owner_field = "OwnerId"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes: list[FieldWrite] = []
        self.human_edits: list[tuple[str, str, float]] = []
        self.stamps: defaultdict[datetime, set[str]] = defaultdict(set)  # SystemModstamp → Leads given it
        self.inbound: str | None = None  # the queue new leads start in
        self._routes = [
            (m, p, self._recorded_update if m == "PATCH" and "composite/sobjects" in name else fn, name)
            for m, p, fn, name in self._routes
        ]

    def _recorded_update(self, req: FakeRequest) -> FakeResponse:
        with self._data:
            try:
                body = req.json()
            except ValueError:
                body = None
            records = body.get("records") if isinstance(body, dict) else None
            records = records if isinstance(records, list) else []
            before = {}
            for rec in records:
                record_id = str(rec.get("id") or rec.get("Id") or "")
                found = self._find(str((rec.get("attributes") or {}).get("type")), record_id) if record_id else None
                before[record_id] = dict(found or {})
            response = self._update(req)
            if response.status == 200 and isinstance(response.body, list):
                now = time.time()
                for rec, result in zip(records, response.body, strict=False):
                    if not result.get("success"):
                        continue
                    record_id = str(rec.get("id") or rec.get("Id"))
                    lead = self.records["Lead"].get(result["id"])
                    if lead is not None:
                        self.stamps[lead["SystemModstamp"]].add(result["id"])
                    for key, value in rec.items():
                        if key in ("attributes", "id", "Id"):
                            continue
                        old = before[record_id].get(key)
                        if key == self.owner_field:  # one id, two spellings: 15 and 18 characters
                            old, value = _id18(old), _id18(value)
                        self.writes.append(FieldWrite(result["id"], key, old, value, now))
            return response

    def env(self) -> dict[str, str]:
        return {
            "SALESFORCE_INSTANCE_URL": self.url,
            "SALESFORCE_ACCESS_TOKEN": self.access_token,
            "SALESFORCE_CA_BUNDLE": str(self.ca_bundle),
        }

    def secrets(self) -> list[str]:
        return [self.access_token]

    def seed_people(self, policy: Policy) -> dict[str, str]:
        people = salesforce_people(self, policy)
        self.inbound = people.get("unassigned")
        return {r.id: people[r.id] for r in policy.reps if r.id in people}

    def new_lead(self, k: int, *, regulated: bool, employees: int) -> str:
        record = self.create("Lead", {
            "FirstName": "Sam", "LastName": f"Chaos{k}", "Email": f"sam{k}@firm{k}.com",
            "Title": "Software Engineer", "Company": f"Firm {k}", "Website": f"firm{k}.com",
            "Industry": "banking" if regulated else "software", "NumberOfEmployees": employees, "Country": "US",
            "LeadSource": "web", "Status": "Open - Not Contacted", "OwnerId": self.inbound,
        })  # fmt: skip
        self.stamps[self.records["Lead"][record]["SystemModstamp"]].add(record)
        return record

    def edit_title(self, record: str, title: str) -> None:
        with self._data:
            self.update("Lead", record, Title=title)
            self.stamps[self.records["Lead"][record]["SystemModstamp"]].add(record)

    def show_intent(self, record: str) -> None:
        """The lead responds to a webinar: a new CampaignMember; the Lead's stamp stays as it was."""
        with self._data:
            webinar = next((c["Id"] for c in self.records["Campaign"].values() if c["Name"] == "Chaos webinar"), None)
            self.add_member(webinar or self.add_campaign("Chaos webinar", "Webinar"), lead_id=record)

    def intent_events(self, record: str) -> int:
        with self._data:
            members = list(self.records["CampaignMember"].values())
        return sum(1 for m in members if m["LeadId"] == record and m["HasResponded"] and not m["IsDeleted"])

    def fields(self, record: str) -> dict[str, Any]:
        return self.get("Lead", record)

    def title(self, record: str) -> str | None:
        return self.get("Lead", record).get("Title")

    def owner(self, record: str) -> str | None:
        return self.get("Lead", record).get("OwnerId")

    def human_owner(self, record: str, owner: str) -> None:
        """A rep takes the Lead in Salesforce (loopgate must never overwrite this)."""
        with self._data:
            self.update("Lead", record, OwnerId=owner)
            self.stamps[self.records["Lead"][record]["SystemModstamp"]].add(record)
            self.human_edits.append((record, owner, time.time()))

    def overwrite(self, record: str, values: dict[str, Any]) -> None:
        """Someone (a person, another integration) sets fields of the Lead."""
        with self._data:
            self.update("Lead", record, values)
            self.stamps[self.records["Lead"][record]["SystemModstamp"]].add(record)


def _id18(value: Any) -> Any:
    return salesforce_id18(value) if isinstance(value, str) and len(value) == 15 else value


def recording_crm(name: str) -> RecordingCrm:
    """A fresh recording fake of the CRM called ``name``."""
    if name == "hubspot":
        return RecordingHubSpot(access_token=HUBSPOT_TOKEN)
    if name == "salesforce":
        return RecordingSalesforce(page_size=7)
    raise ValueError(f"unknown CRM {name!r} (expected one of {CRMS})")


# --- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A ``loopgate`` subprocess, its stderr collected line by line."""

    args: tuple[str, ...]
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> bool:
        """SIGKILL; whether the process was still running (a fault injected mid-work)."""
        alive = self.alive
        if alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)
        self._close()
        return alive

    def stop(self, timeout: float = 30) -> int:
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        self._close()
        return code

    def wait(self, timeout: float = 120) -> int:
        code = self.popen.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        if self.reader is not None:
            self.reader.join(10)
        if self.popen.stderr is not None:
            self.popen.stderr.close()

    @property
    def log(self) -> str:
        return "".join(self.lines)


# --- the world ------------------------------------------------------------------------------------


@dataclass
class Click:
    decision_pk: int
    status: int
    elapsed: float
    at: float = field(default_factory=time.monotonic)  # when the acknowledgement arrived


class World:
    """Fakes + database + environment for ``loopgate`` subprocesses; everything they print is kept."""

    def __init__(
        self,
        db_url: str,
        *,
        seed: int = 0,
        policy_path: Path = EXAMPLE_POLICY,
        crm: str | None = "hubspot",
        outbox_lease: float | None = 3,
    ) -> None:
        """``crm``: which CRM the world holds (``hubspot`` or ``salesforce``), or ``None`` for
        none (Slack only: loopgate runs without CRM credentials)."""
        self.db_url = db_url
        self.crm_name = crm
        self.outbox_lease = outbox_lease
        self.rng = random.Random(seed)
        self.intent_rng = random.Random(seed + 1)  # its own: the seeded scenarios stay as they were
        self.policy_path = policy_path
        self.loaded: LoadedPolicy = parse_policy(policy_path.read_text(), str(policy_path))
        # without a CRM the HubSpot fake still stands (its leads are never synced)
        self.crm: RecordingCrm = recording_crm(crm or "hubspot")
        self.slack = FakeSlack(scopes=SLACK_SCOPES)
        self.db = Database(db_url)
        self.procs: list[Proc] = []
        self.clicks: list[Click] = []
        self.versions: Counter[str] = Counter()  # CRM lead id → contents created (1 + edits)
        self.faults = 0
        self.kills: list[float] = []  # when a running process was killed (monotonic)
        self.owners: dict[str, str] = {}  # policy rep id → CRM owner id

    def __enter__(self) -> World:
        self.crm.start()
        self.slack.start()
        self.slack.seed_from_policy(self.loaded.policy)
        self.owners = self.crm.seed_people(self.loaded.policy)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.alive:
                proc.kill()
        self.db.dispose()
        self.slack.stop()
        self.crm.stop()

    # --- environment and processes ---

    @property
    def secrets(self) -> list[str]:
        return [*self.crm.secrets(), self.slack.bot_token, self.slack.signing_secret]

    def env(self, **extra: str) -> dict[str, str]:
        keep = {
            k: v for k, v in os.environ.items() if not k.startswith(("LOOPGATE_", "SLACK_", "HUBSPOT_", "SALESFORCE_"))
        }
        keep.update(
            LOOPGATE_DATABASE_URL=self.db_url,
            LOOPGATE_POLICY=str(self.policy_path),
            LOOPGATE_LOG_LEVEL="INFO",
            SLACK_BOT_TOKEN=self.slack.bot_token,
            SLACK_SIGNING_SECRET=self.slack.signing_secret,
            SLACK_API_URL=self.slack.api_url,
            LOOPGATE_OUTBOX_RETRY_SECONDS="0.5",
            LOOPGATE_SCHEDULER_LEASE_SECONDS="2",
        )
        if self.outbox_lease is not None:  # a killed worker's rows come back in seconds, not 2 minutes
            keep["LOOPGATE_OUTBOX_LEASE_SECONDS"] = str(self.outbox_lease)
        if self.crm_name is not None:
            keep.update(self.crm.env())
        keep.update(extra)
        return keep

    def spawn(self, *args: str, **env: str) -> Proc:
        popen = subprocess.Popen(
            [sys.executable, "-m", "loopgate", *args], cwd=ROOT, env=self.env(**env),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        proc = Proc(tuple(args), popen)

        def pump() -> None:
            assert popen.stderr is not None
            for line in popen.stderr:
                proc.lines.append(line)
                if "loopgate serving" in line and "(health " in line:
                    proc.url = line.split("(health ", 1)[1].split("/healthz")[0]
                    proc.ready.set()
            proc.ready.set()

        proc.reader = threading.Thread(target=pump, daemon=True)
        proc.reader.start()
        self.procs.append(proc)
        return proc

    def sync_at_work(self) -> Proc:
        """A ``sync`` process, returned once it has made its first CRM request."""
        asked = len(self.crm.requests)
        proc = self.spawn("sync", "--crm", self.crm.name)
        self.until(lambda: len(self.crm.requests) > asked or not proc.alive, 60, "the sync to reach the CRM")
        return proc

    def serve(self, *extra: str, **env: str) -> Proc:
        proc = self.spawn("serve", "--port", "0", "--poll", "0.05", *extra, **env)
        if not proc.ready.wait(60) or not proc.url:
            proc.kill()
            raise AssertionError(f"serve did not start:\n{proc.log}")
        return proc

    @property
    def output(self) -> str:
        """Everything every process printed (stderr: logs, errors)."""
        return "".join(p.log for p in self.procs)

    # --- people working the CRM ---

    def new_leads(self, n: int) -> list[str]:
        """People (or a web form) create ``n`` leads; half of them banking, which a person reviews."""
        made = []
        for _ in range(n):
            k = len(self.versions) + 1
            regulated = self.rng.random() < 0.5  # banking: always reviewed by a person
            made.append(self.crm.new_lead(k, regulated=regulated, employees=self.rng.choice([300, 800, 1500])))
            self.versions[made[-1]] += 1
        return made

    def edit_leads(self, n: int) -> None:
        """A person edits the job title of ``n`` leads (a change loopgate decides again)."""
        for record in self.rng.sample(sorted(self.versions), min(n, len(self.versions))):
            self.crm.edit_title(record, self.rng.choice(_TITLES))
            self.versions[record] += 1

    def show_intent(self, n: int) -> None:
        """``n`` leads show intent in the CRM (a change loopgate decides again)."""
        for record in self.intent_rng.sample(sorted(self.versions), min(n, len(self.versions))):
            self.crm.show_intent(record)
            self.versions[record] += 1

    def reassign_by_hand(self, n: int) -> None:
        """A rep takes ``n`` leads in the CRM (owned by them from now on): leads loopgate has
        decided but not yet written back when there are such (the write-back must find the
        person's owner and hold back), else any."""
        mm = [self.owners[r] for r in ("ana", "ben", "cy") if r in self.owners]
        waiting = self._writeback_waiting()
        pool = sorted(waiting) if len(waiting) >= n else sorted(self.versions)
        for record in self.rng.sample(pool, min(n, len(pool))):
            current = self.crm.owner(record)
            choice = self.rng.choice([o for o in mm if o != current])
            self.crm.human_owner(record, choice)
            self.versions[record] += 1

    def _writeback_waiting(self) -> set[str]:
        """CRM ids of leads with a decision waiting to be written back."""
        with self.db.sessions() as s:
            payloads = s.execute(
                select(OutboxRow.payload).where(OutboxRow.kind == "crm.writeback", OutboxRow.status == "pending")
            ).scalars()
            pks = {p.get("decision_pk") for p in payloads}
            rows = s.execute(
                select(Lead.crm_id).join(Decision, Decision.lead_pk == Lead.pk).where(Decision.pk.in_(pks))
            ).scalars()
            return {r for r in rows if r in self.versions}

    # --- people working Slack ---

    def approvable(self, limit: int) -> list[tuple[int, str, str, str]]:
        """Pending escalations on screen: (decision, channel, ts, who may approve), except leads
        a rep reassigned by hand (a review there may legitimately set another owner)."""
        by_hand = {r for r, _, _ in self.crm.human_edits}
        slack_of = {r.id: r.slack_user for r in self.loaded.policy.reps}
        managers = {t.channel: slack_of.get(t.manager) for t in self.loaded.policy.teams}
        with self.db.sessions() as s:
            rows = s.execute(
                select(SlackMessage.decision_pk, SlackMessage.channel, SlackMessage.ts, Decision.owner, Lead.crm_id)
                .join(Decision, Decision.pk == SlackMessage.decision_pk)
                .join(Lead, Lead.pk == Decision.lead_pk)
                .where(SlackMessage.purpose == "escalation", Decision.state == "pending_review")
                .limit(limit * 4)
            ).all()
        out = []
        for pk, channel, ts, owner, crm_id in rows:
            user = slack_of.get(owner or "") or managers.get(channel)  # a queue's lead: the manager
            if crm_id in by_hand or not user or not channel.startswith("C"):
                continue
            out.append((pk, channel, ts, user))
        return out[:limit]

    def approve(self, proc: Proc, limit: int) -> int:
        done = 0
        for pk, channel, ts, user in self.approvable(limit):
            try:
                delivery = self.slack.click(user, ids.APPROVE, channel=channel, ts=ts, url=f"{proc.url}/slack/events")
            except (OSError, AssertionError, StopIteration):
                continue  # the process died under the click, or the message changed
            self.clicks.append(Click(pk, delivery.status, delivery.elapsed))
            done += 1
        return done

    # --- waiting ---

    def outbox_waiting(self) -> int:
        """Effects not yet performed (without a CRM configured, only Slack's)."""
        waiting = select(func.count()).select_from(OutboxRow).where(OutboxRow.status.in_(("pending", "claimed")))
        if self.crm_name is None:
            waiting = waiting.where(OutboxRow.kind.like("slack.%"))
        with self.db.sessions() as s:
            return int(s.execute(waiting).scalar_one())

    def until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.output[-4000:]}")

    def recover(self) -> None:
        """Run everything to completion without faults: sync, then drain every effect (twice,
        so what write-back changed is read back by a sync that must decide nothing new)."""
        for _ in range(2):
            sync = self.spawn("sync", "--crm", self.crm.name)
            assert sync.wait(180) == 0, sync.log
            serve = self.serve("--no-scheduler")
            # claimed rows of a killed process wait out their lease (outbox claims are timed)
            self.until(lambda: self.outbox_waiting() == 0, 240, "the outbox to drain")
            assert serve.stop() == 0, serve.log

    def audit_ok(self) -> bool:
        proc = self.spawn("audit", "verify")
        return proc.wait(120) == 0

    def audit_export(self) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "loopgate", "audit", "export"], cwd=ROOT, env=self.env(), capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
        return result.stdout + result.stderr


# --- the scenario ---------------------------------------------------------------------------------


@dataclass
class Report:
    scenario: str
    faults_injected: int
    operations: int
    lost: int
    duplicated: int
    clobbered: int
    details: dict[str, Any] = field(default_factory=dict)
    crm: str | None = None  # the CRM of the world (None: Slack only)

    def line(self) -> str:
        keys = ("scenario", "crm", "faults_injected", "operations", "lost", "duplicated", "clobbered")
        return json.dumps({k: getattr(self, k) for k in keys} | {"details": self.details})


def crash_recovery(
    db_url: str,
    *,
    seed: int,
    rounds: int,
    leads: int,
    crm: str = "hubspot",
    inspect: Callable[[World], None] | None = None,
) -> Report:
    """Kill ``sync`` and ``serve`` with SIGKILL at random moments while the CRM changes and
    people approve escalations; recover; judge.

    A sync of a few dozen leads reads for a few tenths of a second and decides for about a
    second more, after a start-up that takes 1.5 s on an idle machine and 4 to 8 s on a busy
    one; so sync is killed 0 to 0.8 s after its first CRM request (not after its spawn, or on a
    busy machine every kill lands before it has read anything): while its pages are read,
    stored and decided (a quick one finishes first). ``serve`` is killed within a second of
    being ready: while it posts, updates and writes back."""
    with World(db_url, seed=seed, crm=crm) as world:
        rng = world.rng
        world.crm.latency = 0.002  # a little time on the wire, so kills land mid-batch
        world.slack.latency = 0.005
        world.new_leads(leads)
        kinds: Counter[str] = Counter()  # steps killed while running
        steps: Counter[str] = Counter()
        previous = ""
        for n in range(rounds):
            if n and n % 3 == 0:
                world.new_leads(max(1, leads // 10))
                world.edit_leads(max(1, leads // 20))
                world.show_intent(max(1, leads // 12))
            if n and n % 4 == 1:
                world.reassign_by_hand(max(1, leads // 25))
            elif previous == "sync" and rng.random() < 0.5:
                world.reassign_by_hand(1)  # a rep grabs a lead the sync decided, before its write-back
            if rng.random() < 0.3:
                world.slack.lose_responses("chat.postMessage")  # posted, but the poster never hears
                world.faults += 1
            step = rng.choice(["sync", "serve"])
            if step == "sync":
                proc = world.sync_at_work()
                time.sleep(rng.uniform(0.0, 0.8))
            else:
                proc = world.serve("--no-scheduler")
                time.sleep(rng.uniform(0.0, 0.4))
                world.approve(proc, rng.randint(0, 4))
                time.sleep(rng.uniform(0.0, 0.6))
            steps[step] += 1
            previous = step
            if proc.kill():
                world.faults += 1
                world.kills.append(time.monotonic())
                kinds[step] += 1
        world.recover()
        report = check(world, "crash_recovery")
        report.details["kills"] = dict(kinds)
        report.details["steps"] = dict(steps)
        report.details["rounds"] = rounds
        if inspect is not None:
            inspect(world)
        return report


# --- the checker ----------------------------------------------------------------------------------


def _post_keys(slack: FakeSlack) -> Counter[str]:
    keys: Counter[str] = Counter()
    for message in slack.all_messages():
        meta = message.metadata or {}
        if meta.get("event_type") == ids.METADATA_EVENT:
            keys[str((meta.get("event_payload") or {}).get("key"))] += 1
    return keys


def check(world: World, scenario: str) -> Report:
    """Count lost, duplicated and clobbered effects (see the module doc)."""
    lost: Counter[str] = Counter()
    dup: Counter[str] = Counter()
    crm, slack = world.crm, world.slack
    written = getattr(world.loaded.policy.writeback, crm.name)
    with world.db.sessions() as s:
        leads = {lead.crm_id: lead for lead in s.execute(select(Lead).where(Lead.source == crm.name)).scalars()}
        decisions = list(s.execute(select(Decision).where(Decision.shadow.is_(False))).scalars())
        reviews = {r.decision_pk for r in s.execute(select(Review)).scalars()}
        waiting = Counter(
            str(k)
            for k in s.execute(select(OutboxRow.kind).where(OutboxRow.status.in_(("pending", "claimed", "dead"))))
            .scalars()
            .all()
        )
        shown = list(s.execute(select(SlackMessage)).scalars())
        conflicts = int(s.execute(select(func.count()).select_from(CrmConflict)).scalar_one())
    by_lead: dict[int, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_lead[d.lead_pk].append(d)

    # decisions: every CRM lead's latest content decided, each content once
    for record, versions in world.versions.items():
        lead = leads.get(record)
        if lead is None or lead.content_hash != lead.decided_hash:
            lost["decision"] += 1
            continue
        if lead.title != crm.title(record):
            lost["decision"] += 1  # the store missed the last edit
        stored, held = len(lead_value(lead).events), crm.intent_events(record)
        if held > stored:
            lost["intent_event"] += held - stored
        elif stored > held:
            dup["intent_event"] += stored - held
        changes = sum(1 for d in by_lead[lead.pk] if d.cause in ("new", "changed"))
        dup["decision"] += max(0, changes - versions)

    # effects waiting or dead after recovery
    for kind, n in waiting.items():
        lost[f"outbox:{kind}"] += n

    # Slack: one message per key; every pending review on screen; every stored message real
    for _key, n in _post_keys(slack).items():
        dup["slack_post"] += n - 1
    on_screen = {(m.channel, m.ts) for m in slack.all_messages()}
    escalated = {m.decision_pk for m in shown if m.purpose == "escalation"}
    for m in shown:
        if (m.channel, m.ts) not in on_screen and not m.channel.startswith("U"):
            lost["slack_message"] += 1
    latest = {lead_pk: max(ds, key=lambda d: d.seq) for lead_pk, ds in by_lead.items()}
    for d in latest.values():
        if d.state == "pending_review" and d.pk not in escalated:
            lost["escalation"] += 1

    # clicks: an acknowledged Approve on a decision still pending and still the latest is lost
    # (Slack never resends an acknowledged click, so the bot stores the review before the ack;
    # a SIGKILL right after an ack is no excuse)
    latest_pks = {d.pk: d for d in latest.values()}
    for click in world.clicks:
        d = latest_pks.get(click.decision_pk)
        if click.status == 200 and d is not None and d.state == "pending_review" and d.pk not in reviews:
            lost["click"] += 1

    # CRM: the record shows the latest decision (its status and score); value changes bounded
    # by decisions. A write lost after a review leaves the record at needs_review.
    for record in world.versions:
        lead = leads.get(record)
        d = latest.get(lead.pk) if lead is not None else None
        if d is None or d.state == "superseded":
            continue
        fields = crm.fields(record)
        if fields.get(written["status"]) != _status_shown(d) or not _same_number(
            fields.get(written["score"]), d.score_total
        ):
            lost["crm_write"] += 1
    changed: Counter[tuple[str, str]] = Counter()
    repeats = 0
    for w in crm.writes:
        if w.changed:
            changed[(w.record, w.field)] += 1
        else:
            repeats += 1
    for (record, _field), n in changed.items():
        lead = leads.get(record)
        allowed = len(by_lead[lead.pk]) + sum(1 for d in by_lead[lead.pk] if d.pk in reviews) if lead else 0
        dup["crm_write"] += max(0, n - allowed)

    clobbered = clobbers(crm.writes, crm.human_edits, crm.owner_field)
    audit = world.audit_ok()
    if not audit:
        lost["audit_chain"] += 1
    operations = len(decisions) + sum(_post_keys(slack).values()) + len(crm.writes) + len(world.clicks)
    return Report(
        scenario,
        world.faults,
        operations,
        sum(lost.values()),
        sum(dup.values()),
        clobbered,
        {
            "crm_leads": len(world.versions),
            "decisions": len(decisions),
            "decisions_by_cause": dict(Counter(d.cause for d in decisions)),
            "reviews": len(reviews),
            "slack_posts": sum(_post_keys(slack).values()),
            "crm_field_writes": len(crm.writes),
            "idempotent_repeats": repeats,
            "clicks": len(world.clicks),
            "human_owner_edits": len(crm.human_edits),
            "crm_conflicts_recorded": conflicts,  # write-backs that found a person's owner and held back
            "audit_verified": audit,
            "lost_by_kind": dict(lost),
            "duplicated_by_kind": dict(dup),
            **_stamp_ties(crm),
        },
        crm=world.crm_name,
    )


def _status_shown(d: Decision) -> str | None:
    """The status word a CRM record shows for its latest decision (the vocabulary of
    ``core.writeback``, spelled out here so the checker does not trust the code it checks)."""
    if d.state == "applied":
        return "suppressed" if (d.final_action or d.action) == "suppress" else "auto_assigned"
    return {"pending_review": "needs_review", "reviewed": "reviewed"}.get(d.state)


def _same_number(shown: Any, expected: float) -> bool:
    """HubSpot shows numbers as text, Salesforce as JSON numbers."""
    try:
        return shown is not None and float(shown) == float(expected)
    except (TypeError, ValueError):
        return False


def _stamp_ties(crm: RecordingCrm) -> dict[str, int]:
    """Salesforce: how many ``SystemModstamp`` values were given to more than one Lead, and
    to how many Leads in all (the ties the sync's ``Id`` tie-break must settle)."""
    if not isinstance(crm, RecordingSalesforce):
        return {}
    shared = [leads for leads in crm.stamps.values() if len(leads) > 1]
    return {"shared_modstamps": len(shared), "leads_on_shared_modstamps": sum(len(leads) for leads in shared)}


def clobbers(writes: list[FieldWrite], human_edits: list[tuple[str, str, float]], owner_field: str) -> int:
    """Owner writes (``owner_field``) that replaced the owner a person set (and nobody changed since)."""
    events: dict[str, list[tuple[float, str, str | None, str | None]]] = defaultdict(list)
    for record, owner, at in human_edits:
        events[record].append((at, "human", None, owner))
    for w in writes:
        if w.field == owner_field:
            events[w.record].append((w.at, "loopgate", w.old, w.new))
    count = 0
    for timeline in events.values():
        set_by_human: str | None = None
        for _at, who, old, new in sorted(timeline, key=lambda e: e[0]):
            if who == "human":
                set_by_human = new
            elif old != new:
                if set_by_human is not None and old == set_by_human:
                    count += 1
                set_by_human = None
    return count


# --- two replicas on one PostgreSQL database --------------------------------------------------------


def _lease_holder(world: World) -> str | None:
    from core.store.models import SchedulerLease

    with world.db.sessions() as s:
        rows = s.execute(select(SchedulerLease.holder, SchedulerLease.expires_at)).all()
    live = [h for h, expires in rows if expires is not None and expires.timestamp() > time.time()]
    return live[0] if len(live) == 1 else None


def _pid_of(holder: str) -> int:
    return int(holder.split(":")[-2])


def race_approvals(world: World, a: Proc, b: Proc, races: int) -> dict[str, int]:
    """The same escalation approved at the same moment through both replicas (the proposed
    owner on one, the team's manager on the other): one review, one update of each message,
    and the slower click is told who decided."""
    managers = {t.channel: t.manager for t in world.loaded.policy.teams}
    slack_of = {r.id: r.slack_user for r in world.loaded.policy.reps}
    out = Counter({"races": 0, "double_reviews": 0, "double_updates": 0, "untold": 0})
    for pk, channel, ts, owner_user in world.approvable(races):
        manager_user = slack_of.get(managers.get(channel) or "")
        if manager_user:
            out.update(_race(world, pk, channel, ts, [(owner_user, a), (manager_user, b)]))
    return dict(out)


def _race(world: World, pk: int, channel: str, ts: str, clickers: list[tuple[str, Proc]]) -> Counter[str]:
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(len(clickers))

    def click(user: str, proc: Proc) -> Click:
        barrier.wait()
        d = world.slack.click(user, ids.APPROVE, channel=channel, ts=ts, url=f"{proc.url}/slack/events")
        return Click(pk, d.status, d.elapsed)

    with ThreadPoolExecutor(len(clickers)) as pool:
        world.clicks.extend(f.result() for f in [pool.submit(click, u, p) for u, p in clickers])
    users = {u for u, _ in clickers}
    world.until(lambda: _reviews_of(world, pk) >= 1, 15, f"a review of decision {pk}")
    message = world.slack.message(channel, ts)
    world.until(lambda: message.edits, 15, "the escalation to be updated")

    def told() -> list[Any]:
        return [e for u in users for e in world.slack.ephemerals_for(u) if "Already approved by" in e.text]

    with contextlib.suppress(AssertionError):  # counted as untold below
        world.until(told, 15, "the slower click to be told who decided")
    time.sleep(0.3)  # a second (wrong) update or review would show by now
    out = Counter(
        races=1,
        double_reviews=max(0, _reviews_of(world, pk) - 1),
        double_updates=max(0, len(message.edits) - 1),
        untold=0 if len(told()) == 1 else 1,
    )
    with world.slack._state:
        world.slack.ephemerals.clear()
    return out


def _reviews_of(world: World, decision_pk: int) -> int:
    with world.db.sessions() as s:
        return int(
            s.execute(select(func.count()).select_from(Review).where(Review.decision_pk == decision_pk)).scalar_one()
        )


def replicas(db_url: str, *, seed: int, leads: int, races: int) -> Report:
    """Two ``serve`` replicas (scheduler on, 2 s lease) on one database: one leader at a time,
    outbox rows shared without doubling, simultaneous approvals settled once; the leader is
    killed and the standby takes over; more work arrives and is drained by the survivor."""
    with World(db_url, seed=seed) as world:
        world.new_leads(leads)
        assert world.spawn("sync", "--crm", world.crm.name).wait(180) == 0
        a, b = world.serve(), world.serve()
        by_pid = {a.popen.pid: a, b.popen.pid: b}
        holder = world.until(lambda: _lease_holder(world), 30, "a scheduler leader")
        leaders: set[str] = set()
        for _ in range(20):  # 2 s: renewals of a 2 s lease; never two holders, never a change
            current = _lease_holder(world)
            if current is not None:
                leaders.add(current)
            time.sleep(0.1)
        world.until(lambda: world.outbox_waiting() == 0, 60, "both replicas to drain the outbox")
        raced = race_approvals(world, a, b, races)
        leader = by_pid[_pid_of(holder)]
        standby = b if leader is a else a
        leader.kill()
        world.faults += 1
        killed = time.monotonic()
        new = world.until(lambda: (h := _lease_holder(world)) and h != holder and h, 30, "the standby to lead")
        takeover = time.monotonic() - killed
        world.new_leads(max(1, leads // 4))
        assert world.spawn("sync", "--crm", world.crm.name).wait(180) == 0
        world.until(lambda: world.outbox_waiting() == 0, 60, "the survivor to drain the outbox")
        assert standby.stop() == 0, standby.log
        report = check(world, "replicas")
        report.faults_injected += raced["races"]
        report.duplicated += raced["double_reviews"] + raced["double_updates"]
        report.lost += raced["untold"]
        report.details.update(
            leaders_before_kill=len(leaders),
            new_leader_is_standby=_pid_of(new) == standby.popen.pid,
            takeover_seconds=round(takeover, 2),
            **raced,
        )
        return report


# --- load: signed interactions at a steady rate over two replicas ------------------------------------


def _regulated_leads(n: int, now: Any) -> list[dict[str, Any]]:
    """Leads the example policy always sends to a person (banking), over the mid-market team."""
    from datetime import timedelta

    leads = []
    for i in range(n):
        lead = {
            "id": f"00Q5e0000L{i:05d}", "source": "salesforce", "email": f"buyer{i}@bank{i % 97}.example",
            "first_name": "Buyer", "last_name": f"No. {i}", "title": "Head of Digital", "company": f"Bank {i % 97}",
            "industry": "Banking", "employees": 300 + (i % 1500), "country": "US", "lead_source": "web_demo_form",
            "created_at": (now - timedelta(hours=1)).isoformat(), "updated_at": now.isoformat(),
        }  # fmt: skip
        leads.append(lead)
    return leads


def _decide_reviews(world: World, n: int) -> None:
    from datetime import UTC, datetime

    from core.engine import DecisionEngine
    from core.leads import normalize_lead
    from core.store.decide import decide_pending
    from core.store.records import LeadRow, upsert_leads

    engine = DecisionEngine(world.loaded)
    now = datetime.now(UTC)
    raws = _regulated_leads(n, now)
    for start in range(0, n, 1000):
        with world.db.transaction() as session:
            rows = [LeadRow(normalize_lead(raw)) for raw in raws[start : start + 1000]]
            pks = upsert_leads(session, rows, now=now)
            decide_pending(session, engine, now=now, lead_pks=pks.values(), limit=len(pks))


def load(db_url: str, *, rate: float, seconds: float, replicas: int = 2) -> Report:
    """``rate`` signed Approve clicks per second for ``seconds``, alternating over ``replicas``
    serve processes, each click on its own escalation and its own connection (as Slack sends
    them): every click acknowledged within 3 s, every click one review, every message updated once."""
    from concurrent.futures import ThreadPoolExecutor

    n = int(rate * seconds)
    with World(db_url, crm=None, outbox_lease=None) as world:  # nothing is killed: the production lease
        _decide_reviews(world, n)
        procs = [world.serve("--no-scheduler", LOOPGATE_LOG_LEVEL="WARNING") for _ in range(replicas)]
        world.until(lambda: len(world.approvable(n)) >= n, 60 + n / 50, f"{n} escalations to be posted")
        targets = world.approvable(n)
        clicks: list[Click | None] = [None] * n

        def click(i: int) -> None:
            pk, channel, ts, user = targets[i]
            url = f"{procs[i % replicas].url}/slack/events"
            try:
                d = world.slack.click(user, ids.APPROVE, channel=channel, ts=ts, url=url)
                clicks[i] = Click(pk, d.status, d.elapsed)
            except OSError:
                clicks[i] = Click(pk, 0, float("inf"))

        started = time.perf_counter()
        with ThreadPoolExecutor(64) as pool:
            for i in range(n):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(click, i)
        sent_in = time.perf_counter() - started
        done = [c for c in clicks if c is not None]
        world.clicks.extend(done)
        acked = [c for c in done if c.status == 200]
        world.until(lambda: _review_count(world) >= len(acked), 60 + n / 20, "every acknowledged click to be applied")
        world.until(lambda: world.outbox_waiting() == 0, 60 + n / 20, "every message update")
        time.sleep(0.5)
        for proc in procs:
            assert proc.stop() == 0, proc.log
        latencies = sorted(c.elapsed for c in acked)
        shown = [m for m in world.slack.all_messages() if m.metadata]
        updated = Counter(_changes(m) for m in shown)
        same_content = sum(len(m.edits) - _changes(m) for m in shown)
        reviews = _review_count(world)
        late = sum(1 for c in done if c.elapsed > 3)

        def pct(q: float) -> float | None:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None

        return Report(
            "load",
            faults_injected=0,
            operations=len(done),
            lost=(n - len(acked)) + max(0, len(acked) - reviews) + late + updated.get(0, 0),
            duplicated=max(0, reviews - len(acked)) + sum(v for k, v in updated.items() if k > 1),
            clobbered=0,
            details={
                "clicks": n, "replicas": replicas, "target_rate": rate, "achieved_rate": round(n / sent_in, 1),
                "acked": len(acked), "acked_over_3s": late, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                "max_ms": pct(1.0), "reviews": reviews, "messages_updated_once": updated.get(1, 0),
                "messages_not_updated": updated.get(0, 0), "idempotent_repeats": same_content,
                "messages_updated_more_than_once":
                sum(v for k, v in updated.items() if k > 1),
            },
        )  # fmt: skip


def _changes(message: Any) -> int:
    """How often a message's content really changed (an update re-sending the same content is
    an idempotent repeat)."""
    versions = [e["blocks"] for e in message.edits] + [message.blocks]
    return sum(1 for old, new in itertools.pairwise(versions) if old != new)


def _review_count(world: World) -> int:
    with world.db.sessions() as s:
        return int(s.execute(select(func.count()).select_from(Review)).scalar_one())
