"""The monthly tuning job: report what went wrong last month and propose a challenger policy.

:func:`monthly_tuning` is the plain function the scheduler calls on the 1st of each month
(for the month just ended) and ``loopgate tune`` calls on demand. It reads labelled decisions,
writes one ``tuning_reports`` row per month (a re-run replaces it), one audit event
(``tuning.reported``) and a ``slack.message`` summary to the leaders' channel. It never
publishes anything: the proposed challenger is a policy file for a person to read, simulate
(``loopgate policy simulate``) and publish (``loopgate policy publish --shadow``).

The proposal re-learns the scoring section (:mod:`core.learning.scoring_fit`) from the last
``lookback_days`` of labels: the bands people chose (reviews, audit confirmations) when there
are at least ``min_labels`` of them covering every band, else CRM outcomes. Its expected
effect is measured twice: on leads held out of the fit (honest), and by replaying the month's
leads through both policies (review load, changed decisions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.engine import DecisionEngine
from core.errors import CoreError, PolicyError
from core.learning.announce import announcement_channels, tuning_message
from core.learning.comparison import compare
from core.learning.labels import LabelledDecision
from core.learning.policy_text import render_scoring, replace_section
from core.learning.scoring_fit import Example, ScoringProposal, learn_scoring
from core.learning.tuning import agreement_summary, band_errors, ranking, recurring_reasons
from core.policy import LoadedPolicy, parse_policy
from core.store import audit_log, outbox
from core.store.audit_log import AuditRecord
from core.store.decide import DecideRequest, lead_contexts
from core.store.labels import OUTCOME_WAIT, labelled_decisions, verdicts
from core.store.models import TuningReport
from core.store.records import lead_value, leads_by_pk
from core.store.replay import replay_decisions

__all__ = [
    "Target",
    "TuningError",
    "TuningResult",
    "month_bounds",
    "monthly_tuning",
    "previous_month",
    "report_zone",
]

Target = Literal["auto", "reviews", "outcomes"]


class TuningError(CoreError):
    """Tuning cannot run as asked (a malformed month, say)."""


@dataclass(frozen=True)
class TuningResult:
    month: str
    report: dict[str, Any]
    challenger: LoadedPolicy | None


def report_zone(loaded: LoadedPolicy) -> ZoneInfo:
    """Where a report's months begin and end: the digest's time zone (UTC without a digest).
    The job runs on the 1st, 06:00 there; in UTC that is still the last day of the month
    east of UTC+6, which reported on the month before the one just ended."""
    digest = loaded.policy.digest
    return ZoneInfo(digest.timezone if digest else "UTC")


def month_bounds(month: str, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """``2026-11`` → [Nov 1, Dec 1), midnight in ``zone``, as UTC times."""
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise TuningError(f"'{month}' is not a month like 2026-11") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return start.replace(tzinfo=zone).astimezone(UTC), end.replace(tzinfo=zone).astimezone(UTC)


def previous_month(now: datetime, zone: tzinfo = UTC) -> str:
    """The calendar month in ``zone`` before ``now``'s (the one the monthly job reports on)."""
    first = now.astimezone(zone).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _held_out(lead_pk: int, share: float = 0.2) -> bool:
    digest = hashlib.sha256(f"holdout:{lead_pk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _examples(
    session: Session, engine: DecisionEngine, items: Sequence[LabelledDecision]
) -> dict[int, tuple[Any, Any]]:
    """(lead value, account) per decision, as the engine saw the lead."""
    rows = leads_by_pk(session, [i.lead_pk for i in items])
    values = {pk: lead_value(row) for pk, row in rows.items()}
    contexts = lead_contexts(session, engine, [DecideRequest(r, "replay", "") for r in rows.values()], values)
    return {i.decision_pk: (values[i.lead_pk], contexts[i.lead_pk].account) for i in items if i.lead_pk in values}


def _learn(
    loaded: LoadedPolicy,
    items: Sequence[LabelledDecision],
    facts: dict[int, tuple[Any, Any]],
    *,
    target: Target,
    min_labels: int,
) -> tuple[ScoringProposal | None, str, str]:
    """(proposal, what it learned from, why not when None)."""
    policy = loaded.policy
    classes = ["cold", *[b for b, _ in sorted(policy.scoring.bands.items(), key=lambda kv: kv[1])]]
    index = {b: i for i, b in enumerate(classes)}
    judged = [i for i in items if i.human_band in index and i.decision_pk in facts]
    known = [i for i in items if i.outcome is not None and i.decision_pk in facts]
    covered = {i.human_band for i in judged} == set(classes)
    use_reviews = target == "reviews" or (target == "auto" and len(judged) >= min_labels and covered)
    if use_reviews:
        if len(judged) < min_labels or not covered:
            return None, "reviews", f"{len(judged)} judged leads (need {min_labels} covering {', '.join(classes)})"
        examples = [Example(*facts[i.decision_pk], i.decided_at, index[i.human_band or ""]) for i in judged]
        return learn_scoring(policy, examples, classes=classes, anchor="bands"), "reviews", ""
    positives = sum(1 for i in known if i.outcome and i.outcome.positive)
    if len(known) < min_labels or positives == 0 or positives == len(known):
        why = (
            f"{len(judged)} judged leads and {len(known)} leads with outcomes ({positives} converted); "
            f"need {min_labels} of either"
        )
        return None, "outcomes", why
    examples = [
        Example(*facts[i.decision_pk], i.decided_at, int(bool(i.outcome and i.outcome.positive))) for i in known
    ]
    totals = [float(i.contract["score"]["total"]) for i in known]
    proposal = learn_scoring(policy, examples, classes=["no", "yes"], anchor="shares", current_totals=totals)
    return proposal, "outcomes", ""


def _challenger(loaded: LoadedPolicy, proposal: ScoringProposal, header: str) -> LoadedPolicy:
    text = replace_section(loaded.text, "scoring", render_scoring(proposal.scoring))
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return parse_policy(text, "challenger.yaml")


def monthly_tuning(
    session: Session,
    loaded: LoadedPolicy,
    engine: DecisionEngine,
    *,
    month: str,
    now: datetime,
    actor: str = "loopgate",
    lookback_days: int = 90,
    min_labels: int = 100,
    target: Target = "auto",
    top_n: int = 50,
    persist: bool = True,
) -> TuningResult:
    """Build (and, with ``persist``, store, audit and announce) the month's tuning report
    (the calendar month in :func:`report_zone`)."""
    since, until = month_bounds(month, report_zone(loaded))
    outcome_after = now - OUTCOME_WAIT
    items = labelled_decisions(session, since=since, until=until, outcome_after=outcome_after)
    found = verdicts(session, since=since, until=until)
    bands = ["cold", *[b for b, _ in sorted(loaded.policy.scoring.bands.items(), key=lambda kv: kv[1])]]
    actions: dict[str, int] = {}
    for i in items:
        actions[i.contract["action"]] = actions.get(i.contract["action"], 0) + 1
    report: dict[str, Any] = {
        "month": month,
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "policy_version": loaded.version,
        "generated_at": now.isoformat(),
        "decisions": len(items),
        "actions": dict(sorted(actions.items())),
        "agreement": agreement_summary(found),
        "band_errors": band_errors(items, bands),
        "ranking": ranking(items, top_n=top_n),
        "override_reasons": recurring_reasons(found),
    }
    challenger = _propose(
        session, loaded, engine, report, items, until, outcome_after, lookback_days, min_labels, target, top_n
    )
    if persist:
        _store(session, loaded, report, challenger, now=now, actor=actor)
    return TuningResult(month, report, challenger)


def _propose(
    session: Session,
    loaded: LoadedPolicy,
    engine: DecisionEngine,
    report: dict[str, Any],
    month_items: Sequence[LabelledDecision],
    until: datetime,
    outcome_after: datetime,
    lookback_days: int,
    min_labels: int,
    target: Target,
    top_n: int,
) -> LoadedPolicy | None:
    learn_since = until - timedelta(days=lookback_days)
    train = labelled_decisions(session, since=learn_since, until=until, outcome_after=outcome_after)
    facts = _examples(session, engine, train)
    proposal, source, why = _learn(loaded, train, facts, target=target, min_labels=min_labels)
    if proposal is None:
        report["proposal"] = None
        report["no_proposal_reason"] = f"not enough labels to learn from ({why})"
        return None
    # honest estimate: refit without a held-out fifth of the leads, judge on that fifth
    fit_part = [i for i in train if not _held_out(i.lead_pk)]
    held = [i for i in train if _held_out(i.lead_pk)]
    holdout: dict[str, Any] | None = None
    try:
        part, _, _ = _learn(loaded, fit_part, facts, target=_same_source(source), min_labels=1)
    except ValueError:
        part = None
    if part is not None and held:
        try:
            trial = DecisionEngine(_challenger(loaded, part, "holdout trial"), calibration=engine.calibration)
        except PolicyError:
            trial = None
        if trial is not None:
            pairs = [r.pair() for r in replay_decisions(session, engine, trial, held)]
            judged = compare(pairs, days=1, top_n=top_n)
            holdout = {
                "leads": len(held),
                "band_agreement": judged["labels"]["band_agreement"],
                "judged": judged["labels"]["judged"],
                "auc": {"before": judged["outcomes"]["before"]["auc"], "after": judged["outcomes"]["after"]["auc"]},
                "lift_top_decile": {
                    "before": judged["outcomes"]["before"]["lift_top_decile"],
                    "after": judged["outcomes"]["after"]["lift_top_decile"],
                },
            }
    worse = _worse_held_out(source, holdout)
    if worse is not None:
        # a challenger its own held-out leads call worse is noise for the person who would
        # simulate it — and harm if published unsimulated
        report["proposal"] = None
        report["no_proposal_reason"] = f"the re-learned scoring does worse on held-out leads: {worse}"
        return None
    header = _header(report["month"], source, proposal, holdout)
    try:
        challenger = _challenger(loaded, proposal, header)
    except PolicyError as exc:  # a learned section must validate; if not, say so instead of crashing
        report["proposal"] = None
        report["no_proposal_reason"] = f"the learned scoring did not validate: {exc}"
        return None
    if challenger.version == loaded.version:
        report["proposal"] = None
        report["no_proposal_reason"] = "re-learning from these labels gives the current scoring back: nothing to change"
        return None
    days = max((until - datetime.fromisoformat(report["period"]["since"])).days, 1)
    replayed = replay_decisions(
        session, engine, DecisionEngine(challenger, calibration=engine.calibration), month_items
    )
    effect = compare([r.pair() for r in replayed], days=days, top_n=top_n)
    report["proposal"] = {
        "learned_from": source,
        "since": learn_since.isoformat(),
        "labels": proposal.examples,
        "class_counts": dict(zip(proposal.classes, proposal.class_counts, strict=True)),
        "converged": proposal.converged,
        "changes": [
            {"what": c.what, "before": c.before, "after": c.after} for c in proposal.changes if c.before != c.after
        ],
        "notes": list(proposal.notes),
        "challenger_version": challenger.version,
        "expected_effect": {
            "held_out": holdout,
            "replay": {
                "leads": effect["leads"],
                "changed": effect["changed"],
                "band_agreement": effect["labels"]["band_agreement"],
                "review_per_day": {
                    "before": effect["review_load"]["before"]["per_day"],
                    "after": effect["review_load"]["after"]["per_day"],
                },
                "review_share": {
                    "before": effect["review_load"]["before"]["share"],
                    "after": effect["review_load"]["after"]["share"],
                },
                "lift_top_decile": {
                    "before": effect["outcomes"]["before"]["lift_top_decile"],
                    "after": effect["outcomes"]["after"]["lift_top_decile"],
                },
            },
        },
    }
    report["no_proposal_reason"] = None
    return challenger


def _worse_held_out(source: str, holdout: dict[str, Any] | None) -> str | None:
    """What the held-out fifth says is worse about the re-learned scoring, by the label it was
    learned from (people's bands, or CRM outcomes); ``None`` when not worse or not measured."""
    if holdout is None:
        return None
    name, figures = ("band agreement", holdout["band_agreement"]) if source == "reviews" else ("AUC", holdout["auc"])
    before, after = figures["before"], figures["after"]
    if before is None or after is None or after >= before:
        return None
    return f"{name} {before} → {after} on {holdout['leads']} leads"


def _same_source(source: str) -> Target:
    """The held-out refit learns from the same kind of label as the proposal."""
    return "reviews" if source == "reviews" else "outcomes"


def _header(month: str, source: str, proposal: ScoringProposal, holdout: dict[str, Any] | None) -> str:
    learned = "the bands people chose" if source == "reviews" else "CRM outcomes"
    lines = [
        f"Challenger proposed by `loopgate tune --month {month}`: the scoring section was re-learned",
        f"from {proposal.examples} labelled leads ({learned}); everything else is the champion as written.",
    ]
    if holdout is not None:
        agree = holdout["band_agreement"]
        lines.append(
            f"Expected (on {holdout['leads']} held-out leads): band agreement with people {agree['before']} → "
            f"{agree['after']}; AUC {holdout['auc']['before']} → {holdout['auc']['after']}."
        )
    lines += [
        "Next: loopgate policy simulate THIS_FILE --since 30d, then loopgate policy publish THIS_FILE --shadow",
        "",
    ]
    return "\n".join(lines)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines (Slack, CLI headline)."""
    agreement = report["agreement"]["overall"]
    lines = [
        f"{report['decisions']} decisions; agreement {agreement['agreement']} over {agreement['verdicts']} verdicts",
    ]
    ranking_ = report["ranking"]
    if ranking_["known"]:
        lines.append(
            f"lift at top decile {ranking_['lift_top_decile']}, precision@{ranking_['n']} {ranking_['precision_at_n']} "
            f"({ranking_['known']} outcomes)"
        )
    for reason in report["override_reasons"][:3]:
        lines.append(f"recurring override: {reason['reason']} ×{reason['count']}")
    proposal = report.get("proposal")
    if proposal:
        replay = proposal["expected_effect"]["replay"]
        lines.append(
            f"challenger {proposal['challenger_version']}: band agreement {replay['band_agreement']['before']} → "
            f"{replay['band_agreement']['after']}, reviews/day {replay['review_per_day']['before']} → "
            f"{replay['review_per_day']['after']}"
        )
    else:
        lines.append(f"no challenger: {report.get('no_proposal_reason')}")
    return lines


def _same_report(
    before: TuningReport, loaded: LoadedPolicy, report: dict[str, Any], challenger: LoadedPolicy | None
) -> bool:
    def content(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if k != "generated_at"}

    return (
        before.policy_version == loaded.version
        and before.challenger_version == (challenger.version if challenger else None)
        and content(before.report) == content(json.loads(json.dumps(report)))
    )


def _store(
    session: Session,
    loaded: LoadedPolicy,
    report: dict[str, Any],
    challenger: LoadedPolicy | None,
    *,
    now: datetime,
    actor: str,
) -> None:
    month = report["month"]
    before = session.scalars(select(TuningReport).where(TuningReport.month == month)).first()
    if before is not None and _same_report(before, loaded, report, challenger):
        # run again on the same labels (often just to read it, `tune --json`): nothing new to
        # keep, audit or announce — the leaders' channel heard this report already
        return
    session.execute(delete(TuningReport).where(TuningReport.month == month))
    session.add(
        TuningReport(
            month=month,
            created_at=now,
            policy_version=loaded.version,
            report=report,
            challenger_text=challenger.text if challenger else None,
            challenger_version=challenger.version if challenger else None,
        )
    )
    audit_log.append(
        session,
        [
            AuditRecord(
                now,
                actor,
                "tuning.reported",
                f"tuning:{month}",
                {"policy_version": loaded.version, "challenger": challenger.version if challenger else None},
            )
        ],
    )
    for channel in announcement_channels(loaded.policy):
        payload = tuning_message(
            channel, month, summary_lines(report), challenger=challenger.version if challenger else None
        )
        outbox.enqueue(
            session,
            "slack.message",
            f"slack.message:tuning:{month}:{now.isoformat()}:{channel}"[:200],
            payload,
            now=now,
        )
    session.flush()
