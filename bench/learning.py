"""Twelve weeks of loopgate learning from a simulated reviewer, run as in production.

A synthetic lead stream arrives on weekdays (and a trickle on weekends). loopgate decides it
exactly as deployed: leads are stored, ``decide_pending`` runs with the engine that
``loopgate.wiring.build_engine`` builds from the store (the published champion and the newest
calibration), escalations wait for a person, trust is recomputed after reviews land,
calibration is refitted nightly, audit samples are answered weekly, and the monthly tuning job
(``core.store.tuning.monthly_tuning``) proposes a challenger that a simulated admin simulates
(``core.store.replay``) and publishes (``core.store.policies.publish``) when it agrees better
with people on the replayed month.

The reviewer has hidden preferences — its own ICP boundaries (company size 150–1,500 rather
than the policy's 200–5,000; managers count; manufacturing yes, fintech no; webinars barely
matter), its own intent weights and band thresholds — plus a little judgement noise. It
overrides a recommendation whose band it disagrees with (and reassigns a few leads for
reasons no policy sees). Outcomes are drawn from a hidden model and reach the CRM 7–21 days
after a lead arrives.

Output: one JSON object per week on stdout (``week``, ``accept_rate``, ``review_share``,
``auto_error_rate``, ``review_minutes_per_day`` and context), a table on stderr. Seeded and
reproducible: the same arguments print the same lines.

    python bench/learning.py                       # 12 weeks, monthly tuning (production cadence)
    python bench/learning.py --tuning weekly       # the same job every Monday, for comparison
    python bench/learning.py --weeks 2 --leads-per-day 10   # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.engine import DecisionEngine  # noqa: E402
from core.leads import normalize_lead  # noqa: E402
from core.learning.comparison import compare  # noqa: E402
from core.policy import LoadedPolicy, parse_policy  # noqa: E402
from core.store.calibration import refit_calibration  # noqa: E402
from core.store.db import Database  # noqa: E402
from core.store.decide import decide_pending, trust_levels  # noqa: E402
from core.store.migrate import upgrade  # noqa: E402
from core.store.models import AuditVerdict, Decision, Lead, Review  # noqa: E402
from core.store.policies import champion, load_stored, publish  # noqa: E402
from core.store.records import LeadRow, upsert_accounts, upsert_leads  # noqa: E402
from core.store.replay import replay  # noqa: E402
from core.store.trust_state import recompute_trust  # noqa: E402
from core.store.tuning import monthly_tuning  # noqa: E402
from loopgate.wiring import build_engine  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, the first of a month's weeks
BATCH_HOURS = (14, 16, 18, 20)  # UTC: the working day in New York; each batch is one sync + decide
POLICY = ROOT / "examples" / "policy.yaml"

# --- the world ------------------------------------------------------------------------------

INDUSTRIES = [
    ("software", 20), ("saas", 10), ("internet", 7), ("fintech", 10), ("manufacturing", 12), ("retail", 10),
    ("education", 8), ("media", 6), ("logistics", 5), ("healthcare", 3), ("banking", 2), ("insurance", 1),
    ("government", 1), (None, 5),
]  # fmt: skip
TITLES = [
    (("CEO", "CTO", "Founder", "Chief Revenue Officer"), "exec", 6),
    (("VP Engineering", "VP Sales", "Vice President Marketing"), "exec", 8),
    (("Head of Sales", "Head of Operations"), "exec", 6),
    (("Director of IT", "Director of Marketing"), "exec", 10),
    (("Sales Manager", "IT Manager", "Marketing Manager", "Operations Manager"), "manager", 25),
    (("Software Engineer", "Analyst", "Specialist", "Consultant", "Account Executive"), "ic", 32),
    (("Student", "Intern"), "student", 4),
    ((None,), "none", 9),
]
COUNTRIES = [("US", 48), ("CA", 6), ("GB", 10), ("DE", 7), ("FR", 5), ("NL", 3), ("SE", 2), ("NO", 1),
             ("IN", 7), ("BR", 5), ("AU", 3), ("ES", 3)]  # fmt: skip
SOURCES = [("web_demo_form", 20), ("webinar", 20), ("content", 25), ("paid_search", 20), ("partner_referral", 5),
           ("marketplace", 3), ("list_import", 7)]  # fmt: skip
EVENT_RATES = {"demo_request": 0.8, "trial_signup": 0.3, "pricing_page": 2.0, "webinar": 0.8,
               "content_download": 1.5, "email_click": 3.0}  # fmt: skip
# the hidden reviewer's ICP (the starting policy has 200–5000 employees, fintech, no managers)
HIDDEN_INDUSTRY = {"software": 15, "saas": 15, "internet": 15, "manufacturing": 12, "logistics": 8}
HIDDEN_TITLE = {"exec": 18, "manager": 12, "ic": 0, "student": -30, "none": 0}
HIDDEN_EVENTS = {"demo_request": 40, "trial_signup": 30, "pricing_page": 12, "webinar": 2, "content_download": 3,
                 "email_click": 1}  # fmt: skip
HIDDEN_HOT, HIDDEN_WARM = 72, 42
CORE_MARKETS = {"US", "CA", "GB", "DE", "FR", "NL", "SE", "NO"}
REPS = ("ana", "ben", "cy", "dana", "eli")
REP_CRM = {"ana": "0055e000001AAAA", "ben": "0055e000001BBBB", "cy": "0055e000001CCCC", "dana": "0055e000001DDDD",
           "eli": "0055e000001EEEE"}  # fmt: skip


def _pick(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


@dataclass
class SimLead:
    raw: dict[str, Any]
    hidden_score: float  # the reviewer's own score, with its judgement noise
    hidden_band: str
    clean_band: str  # the band of the reviewer's score without the noise: the best any policy can do
    reassign: bool  # the reviewer would move this lead to someone else for reasons no policy sees
    converts: bool
    outcome_at: datetime


@dataclass
class World:
    rng: random.Random
    noise: float = 4.0
    reassign_rate: float = 0.02
    accounts: list[dict[str, Any]] = field(default_factory=list)
    serial: int = 0

    def __post_init__(self) -> None:
        for i in range(150):
            self.accounts.append(
                {
                    "id": f"0015e0000ACC{i:03d}",
                    "source": "salesforce",
                    "name": f"Account {i}",
                    "domain": f"account{i}.com",
                    "owner_id": REP_CRM[self.rng.choice(REPS)],
                    "strategic": self.rng.random() < 0.10,
                    "is_customer": self.rng.random() < 0.20,
                    "tier": self.rng.choice(["tier1", "tier2", None, None, None]),
                    "employees": int(math.exp(self.rng.gauss(6.5, 1.3))),
                }
            )

    def lead(self, created: datetime) -> SimLead:
        rng = self.rng
        self.serial += 1
        n = self.serial
        employees = None if rng.random() < 0.05 else max(1, min(100_000, int(math.exp(rng.gauss(5.3, 1.6)))))
        industry = _pick(rng, INDUSTRIES)
        names, kind, _ = rng.choices(TITLES, weights=[w for *_, w in TITLES])[0]
        title = rng.choice(names)
        country = None if rng.random() < 0.04 else _pick(rng, COUNTRIES)
        account = rng.choice(self.accounts) if rng.random() < 0.06 else None
        personal = account is None and rng.random() < 0.15
        domain = account["domain"] if account else f"company{n}.com"
        email = f"lead{n}@{'gmail.com' if personal else domain}"
        interest = rng.betavariate(1.2, 3.0)
        events = []
        for kind_, rate in EVENT_RATES.items():
            for _ in range(_poisson(rng, rate * interest * 1.5)):
                events.append({"type": kind_, "at": (created - timedelta(hours=rng.uniform(0, 240))).isoformat()})
        if rng.random() < 0.02:
            events.append(
                {"type": rng.choice(["out_of_office", "not_now"]), "at": (created - timedelta(days=1)).isoformat()}
            )
        deal = None
        if employees and rng.random() < 0.5:
            deal = round(min(employees * rng.uniform(10, 40), 500_000), -2)
        raw = {
            "id": f"00Q5e0SIM{n:06d}",
            "source": "salesforce",
            "email": email,
            "first_name": f"Lead{n}",
            "last_name": "Sim",
            "title": title,
            "company": None if rng.random() < 0.03 else (account["name"] if account else f"Company {n}"),
            "industry": industry,
            "employees": employees,
            "country": country,
            "lead_source": _pick(rng, SOURCES),
            "estimated_deal_size": deal,
            "created_at": created.isoformat(),
            "updated_at": created.isoformat(),
            "events": events,
        }
        hidden_fit = self._hidden_fit(employees, industry, kind, country, personal)
        hidden_intent = self._hidden_intent(events, created)
        noise = rng.gauss(0, 1) * self.noise  # the same draws whatever σ: one stream of leads
        score = hidden_fit + hidden_intent + noise
        band = _band(score)
        p_convert = 1 / (1 + math.exp(-(-4.6 + 0.055 * (hidden_fit + hidden_intent))))
        return SimLead(
            raw=raw,
            hidden_score=score,
            hidden_band=band,
            clean_band=_band(hidden_fit + hidden_intent),
            reassign=rng.random() < self.reassign_rate,
            converts=rng.random() < p_convert,
            outcome_at=created + timedelta(days=rng.uniform(7, 21)),
        )

    @staticmethod
    def _hidden_fit(
        employees: int | None, industry: str | None, kind: str, country: str | None, personal: bool
    ) -> float:
        points = 0.0
        if employees is not None:
            points += (
                10
                if 50 <= employees < 150
                else 28
                if 150 <= employees < 1500
                else 15
                if 1500 <= employees < 5000
                else 5
                if employees >= 5000
                else 0
            )
        points += HIDDEN_INDUSTRY.get(industry or "", 0)
        points += HIDDEN_TITLE[kind]
        points += 4 if country in CORE_MARKETS else 2 if country in ("AU", "ES") else 0
        points -= 12 if personal else 0
        return points

    @staticmethod
    def _hidden_intent(events: list[dict[str, Any]], now: datetime) -> float:
        total = 0.0
        for e in events:
            age = (now - datetime.fromisoformat(e["at"])).total_seconds() / 86400
            total += HIDDEN_EVENTS.get(e["type"], 0) * 0.5 ** (age / 10)
        return min(total, 45.0)


def _band(score: float) -> str:
    return "hot" if score >= HIDDEN_HOT else "warm" if score >= HIDDEN_WARM else "cold"


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# --- the simulated people --------------------------------------------------------------------


def judge(sim: SimLead, contract: dict[str, Any]) -> tuple[bool, str | None, dict[str, Any]]:
    """The hidden reviewer on one recommendation: (accept unchanged?, reason, what it changes)."""
    band = contract["score"]["band"]
    if band != sim.hidden_band:
        reason = "not_a_fit" if sim.hidden_band == "cold" else "wrong_segment"
        return False, reason, {"band": sim.hidden_band}
    if contract.get("owner_kind") == "queue" and contract["route"]["rule"] == "fallback" and band != "cold":
        return False, "capacity", {"owner": "ben"}
    if sim.reassign:
        return False, "territory_exception", {"owner": "cy" if contract.get("owner") != "cy" else "ana"}
    return True, None, {}


def oracle(sim: SimLead, contract: dict[str, Any]) -> bool:
    """Would the reviewer accept the best possible recommendation for this lead? (Its own
    noiseless band; the same routing.) The ceiling any policy could reach on these leads."""
    return judge(sim, {**contract, "score": {**contract["score"], "band": sim.clean_band}})[0]


# --- the simulation ---------------------------------------------------------------------------


@dataclass
class Week:
    leads: int = 0
    reviews: int = 0
    accepted: int = 0
    auto: int = 0
    auto_wrong: int = 0
    suppressed: int = 0
    hard: int = 0  # leads with a hard trigger: reviewed at every trust level
    oracle_accepted: int = 0  # reviewed leads a perfect policy (the reviewer's own, noiseless) gets accepted
    oracle_auto_wrong: int = 0


@dataclass
class Config:
    weeks: int
    seed: int
    leads_per_day: float
    minutes_per_review: float
    tuning: str  # monthly | weekly | off
    policy: Path = POLICY
    reviewer_noise: float = 4.0  # σ of the reviewer's judgement noise, in score points
    reassign_rate: float = 0.02  # leads the reviewer moves for reasons no policy can see


def _business_days(weeks: int) -> int:
    return weeks * 5


def _loaded(db: Database, fallback: LoadedPolicy) -> LoadedPolicy:
    with db.sessions() as s:
        version = champion(s)
        return load_stored(s, version) if version else fallback


class Simulation:
    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.rng = random.Random(config.seed)
        self.world = World(random.Random(config.seed + 1), config.reviewer_noise, config.reassign_rate)
        self.sims: dict[str, SimLead] = {}
        self.weeks: dict[int, Week] = {}
        self.log: list[str] = []
        start_policy = parse_policy(config.policy.read_text(), str(config.policy))
        with db.transaction() as s:
            publish(s, start_policy, now=START - timedelta(days=1), by="bench:admin")
            from core.leads import normalize_account

            upsert_accounts(s, [normalize_account(a) for a in self.world.accounts], now=START - timedelta(days=1))
        self.fallback = start_policy

    def week_of(self, at: datetime) -> int:
        return (at - START).days // 7 + 1

    def run(self) -> list[dict[str, Any]]:
        days = self.config.weeks * 7
        rows: list[dict[str, Any]] = []
        for day in range(days):
            date = START + timedelta(days=day)
            if date.day == 1 and self.config.tuning == "monthly" and day > 0:
                self.tune(date + timedelta(hours=6), (date - timedelta(days=1)).strftime("%Y-%m"))
            if date.weekday() == 0 and day > 0:
                if self.config.tuning == "weekly":
                    self.tune(date + timedelta(hours=6), (date - timedelta(days=1)).strftime("%Y-%m"))
                self.audit(date + timedelta(hours=13))
            self.outcomes(date)
            weekday = date.weekday() < 5
            arrivals = _poisson(self.rng, self.config.leads_per_day if weekday else self.config.leads_per_day / 8)
            per_batch = [0] * len(BATCH_HOURS)
            for _ in range(arrivals):
                per_batch[self.rng.randrange(len(BATCH_HOURS))] += 1
            for hour, count in zip(BATCH_HOURS, per_batch, strict=True):
                at = date + timedelta(hours=hour)
                self.batch(at, count)
            version = _loaded(self.db, self.fallback).version
            with self.db.transaction() as s:
                refit_calibration(s, now=date + timedelta(days=1), policy_version=version)
            if date.weekday() == 6:
                rows.append(self.summary(self.week_of(date), date))
        return rows

    def batch(self, at: datetime, count: int) -> None:
        raws = []
        for _ in range(count):
            sim = self.world.lead(at - timedelta(minutes=self.rng.uniform(1, 110)))
            self.sims[sim.raw["id"]] = sim
            raws.append(sim.raw)
        loaded = _loaded(self.db, self.fallback)
        engine = build_engine(self.db, loaded)
        week = self.weeks.setdefault(self.week_of(at), Week())
        with self.db.transaction() as s:
            if raws:
                pks = upsert_leads(s, [LeadRow(normalize_lead(r)) for r in raws], now=at)
                decided = decide_pending(s, engine, now=at, lead_pks=pks.values(), limit=len(pks))
            else:
                decided = []
            for d in decided:
                contract = d.decision.to_dict()
                sim = self.sims[d.decision.lead_id]
                week.leads += 1
                week.hard += any(t.hard for t in d.decision.triggers)
                oracle_ok = oracle(sim, contract)
                if d.decision.action == "review":
                    agree, reason, change = judge(sim, contract)
                    week.reviews += 1
                    week.accepted += agree
                    week.oracle_accepted += oracle_ok
                    _review(s, d.decision_pk, d.lead_pk, contract, agree, reason, change, at + timedelta(minutes=45))
                elif d.decision.action == "auto":
                    week.auto += 1
                    week.auto_wrong += not judge(sim, contract)[0]
                    week.oracle_auto_wrong += not oracle_ok
                else:
                    week.suppressed += 1
            for move in recompute_trust(s, loaded, now=at + timedelta(hours=1), actor="scheduler"):
                self.log.append(f"{at:%Y-%m-%d} trust {move.segment} {move.from_level}→{move.to_level} ({move.kind})")

    def audit(self, at: datetime) -> None:
        """The weekly digest: a leader confirms or flags last week's sampled automatic decisions."""
        loaded = _loaded(self.db, self.fallback)
        with self.db.transaction() as s:
            rows = s.execute(
                select(Decision.pk, Decision.lead_id, Decision.contract, Decision.segment).where(
                    Decision.audit_sample.is_(True),
                    Decision.shadow.is_(False),
                    Decision.decided_at >= at - timedelta(days=7, hours=13),
                    Decision.decided_at < at,
                )
            ).all()
            for pk, lead_id, contract, segment in rows:
                agree, reason, _ = judge(self.sims[lead_id], contract)
                s.add(
                    AuditVerdict(
                        decision_pk=pk,
                        verdict="confirm" if agree else "flag",
                        reason_code=reason,
                        reviewer="lee",
                        segment=segment,
                        at=at,
                    )
                )
            s.flush()
            for move in recompute_trust(s, loaded, now=at, actor="scheduler"):
                self.log.append(f"{at:%Y-%m-%d} trust {move.segment} {move.from_level}→{move.to_level} ({move.kind})")

    def outcomes(self, date: datetime) -> None:
        """The CRM reports conversions (a sync would bring them)."""
        due = [
            lead_id
            for lead_id, sim in self.sims.items()
            if sim.converts and date <= sim.outcome_at < date + timedelta(days=1)
        ]
        if not due:
            return
        with self.db.transaction() as s:
            s.execute(update(Lead).where(Lead.crm_id.in_(due)).values(converted=True, converted_at=date))

    def tune(self, at: datetime, month: str) -> None:
        """The monthly job proposes; an admin simulates the proposal and publishes it if people
        would have agreed with it more often over the last 30 days."""
        loaded = _loaded(self.db, self.fallback)
        engine = build_engine(self.db, loaded)
        with self.db.transaction() as s:
            result = monthly_tuning(s, loaded, engine, month=month, now=at, actor="scheduler")
        if result.challenger is None:
            self.log.append(f"{at:%Y-%m-%d} tune {month}: no proposal ({result.report.get('no_proposal_reason')})")
            return
        new_engine = DecisionEngine(result.challenger, calibration=engine.calibration)
        with self.db.sessions() as s:
            replayed = replay(s, engine, new_engine, since=at - timedelta(days=30), until=at)
        report = compare([r.pair() for r in replayed], days=30)
        before, after = report["labels"]["band_agreement"]["before"], report["labels"]["band_agreement"]["after"]
        if before is not None and after is not None and after > before + 0.02:
            with self.db.transaction() as s:
                publish(
                    s, result.challenger, now=at, by="bench:admin", note=f"tuning {month}: simulated {before} → {after}"
                )
            self.log.append(
                f"{at:%Y-%m-%d} tune {month}: published {result.challenger.version} (band agreement {before} → {after})"
            )
        else:
            self.log.append(f"{at:%Y-%m-%d} tune {month}: not published (band agreement {before} → {after})")

    def summary(self, number: int, date: datetime) -> dict[str, Any]:
        week = self.weeks.get(number, Week())
        with self.db.sessions() as s:
            levels = trust_levels(s)
            version = champion(s)
        loaded = _loaded(self.db, self.fallback)
        start_levels = {
            seg: loaded.policy.trust.segments.get(seg, loaded.policy.trust.default_level)
            for seg in [*loaded.policy.segments, loaded.policy.default_segment]
        }
        start_levels.update(levels)
        return {
            "week": number,
            "accept_rate": _ratio(week.accepted, week.reviews),
            "review_share": _ratio(week.reviews, week.leads),
            "auto_error_rate": _ratio(week.auto_wrong, week.auto),
            "review_minutes_per_day": round(week.reviews * self.config.minutes_per_review / 5, 1),
            "leads": week.leads,
            "reviews": week.reviews,
            "hard_trigger_share": _ratio(week.hard, week.leads),
            "oracle_accept_rate": _ratio(week.oracle_accepted, week.reviews),
            "oracle_auto_error_rate": _ratio(week.oracle_auto_wrong, week.auto),
            "auto": week.auto,
            "suppressed": week.suppressed,
            "minutes_per_review": self.config.minutes_per_review,
            "trust_levels": dict(sorted(start_levels.items())),
            "policy_version": version,
            "tuning": self.config.tuning,
            "seed": self.config.seed,
        }


def _review(
    s: Any,
    decision_pk: int,
    lead_pk: int,
    contract: dict[str, Any],
    agree: bool,
    reason: str | None,
    change: dict[str, Any],
    at: datetime,
) -> None:
    """What the bot stores when a person approves, reassigns or overrides."""
    before = {"owner": contract.get("owner"), "band": contract["score"]["band"], "action": contract["action"]}
    kind = "approve" if agree else ("reassign" if set(change) == {"owner"} else "override")
    s.add(
        Review(
            decision_pk=decision_pk,
            lead_pk=lead_pk,
            kind=kind,
            reviewer="U01" + _reviewer(contract).upper(),
            reviewer_rep=_reviewer(contract),
            reason_code=reason,
            note=None,
            agree=agree,
            segment=contract["segment"],
            before=before,
            after={**before, **change},
            decided_at=at,
        )
    )
    s.execute(
        update(Decision)
        .where(Decision.pk == decision_pk)
        .values(state="reviewed", final_owner=change.get("owner", contract.get("owner")), final_action="auto")
    )


def _reviewer(contract: dict[str, Any]) -> str:
    """The proposed owner reviews; a lead parked in a queue is reviewed by the team's manager."""
    owner = contract.get("owner")
    return owner if owner in REPS else "lee"


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--leads-per-day", type=float, default=45.0, help="weekday arrivals (weekends get 1/8)")
    parser.add_argument("--minutes-per-review", type=float, default=3.0)
    parser.add_argument("--tuning", choices=["monthly", "weekly", "off"], default="monthly")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp folder)")
    parser.add_argument("--policy", type=Path, default=POLICY, help="the starting policy (default: the example)")
    parser.add_argument(
        "--reviewer-noise", type=float, default=4.0, help="σ of the reviewer's judgement noise (points)"
    )
    parser.add_argument("--reassign-rate", type=float, default=0.02, help="share of leads moved for unseen reasons")
    args = parser.parse_args(argv)
    config = Config(
        args.weeks,
        args.seed,
        args.leads_per_day,
        args.minutes_per_review,
        args.tuning,
        args.policy,
        args.reviewer_noise,
        args.reassign_rate,
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.db or f"sqlite:///{tmp}/bench.db")
        upgrade(db)
        sim = Simulation(config, db)
        rows = sim.run()
        db.dispose()
    for row in rows:
        print(json.dumps(row), flush=True)
    _table(rows, sim.log)
    return 0


def _table(rows: list[dict[str, Any]], log: list[str]) -> None:
    err = sys.stderr
    print(
        f"{'week':>4} {'leads':>5} {'accept':>7} {'(best)':>7} {'review%':>8} {'(hard)':>7} {'auto_err':>9} "
        f"{'(best)':>7} {'min/day':>8}  levels (ent/mm/smb/unk)",
        file=err,
    )
    for r in rows:
        lv = r["trust_levels"]
        levels = "/".join(str(lv.get(k, "-")) for k in ("enterprise", "mid_market", "smb", "unknown_size"))
        print(
            f"{r['week']:>4} {r['leads']:>5} {_fmt(r['accept_rate']):>7} {_fmt(r['oracle_accept_rate']):>7} "
            f"{_fmt(r['review_share']):>8} {_fmt(r['hard_trigger_share']):>7} {_fmt(r['auto_error_rate']):>9} "
            f"{_fmt(r['oracle_auto_error_rate']):>7} {r['review_minutes_per_day']:>8}  {levels}",
            file=err,
        )
    print(
        "(best) = a perfect policy (the reviewer's own noiseless judgement) on the same leads; "
        "(hard) = share of leads with a hard trigger, reviewed at every trust level",
        file=err,
    )
    for line in log:
        print(line, file=err)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
