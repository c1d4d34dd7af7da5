"""The daily focus list job: one per person, at ``notifications.focus_list_at`` in their own time
zone, on their working days (``working_hours.days``, else Monday to Friday).

Who gets one: people who take leads (role ``rep``) and team managers (they review
escalations); not admins-only accounts, who would see everyone's work. What is in it: open
first-touch clocks they own (hot first, each with "I contacted them"), reviews they may act on
(by due time, with Approve / Reassign… / Override…), then their other leads waiting for a first
touch. Nothing waiting, nothing sent.

Once per person and local day: the DM's outbox key is ``focus:{person}:{local date}``. A run
that comes late (the scheduler was down at 08:30) still sends today's list — the lateness is
logged and audited (``focus.late``) — but a run before today's focus time (a coalesced run after
midnight) sends nothing: it does not send today's list early, and yesterday's is stale
(audited as ``focus.skipped``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.blocks.focus import HOT_SHOWN, OTHER_SHOWN, REVIEWS_SHOWN, FocusLead, focus_message
from bot.cards import load_cards
from bot.notifier import enqueue_message
from bot.queries import pending_for
from core.policy.schema import Policy, Rep
from core.review import ReviewRules
from core.sla import PolicySlaClock
from core.store import audit_log
from core.store.audit_log import AuditRecord
from core.store.models import SlaClock
from scheduler.context import SchedulerContext

__all__ = ["LATE_AFTER", "focus_people", "run_focus_list", "working_days"]

log = logging.getLogger(__name__)

LATE_AFTER = timedelta(minutes=30)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def focus_people(policy: Policy) -> list[Rep]:
    """Who gets a focus list: reps who take leads and team managers, with a Slack user."""
    managers = {t.manager for t in policy.teams}
    return [r for r in policy.reps if r.slack_user and ("rep" in r.roles or r.id in managers)]


def working_days(rep: Rep) -> list[str]:
    return list(rep.working_hours.days) if rep.working_hours else ["mon", "tue", "wed", "thu", "fri"]


def _waiting(session: Any, rules: ReviewRules, rep: Rep, now: datetime) -> tuple[list[FocusLead], list[FocusLead]]:
    """(hot, other) leads waiting for ``rep``'s first touch, each by due time."""
    rows = session.execute(
        select(SlaClock.pk, SlaClock.decision_pk, SlaClock.band, SlaClock.due_at)
        .where(
            SlaClock.state == "open",
            SlaClock.kind == "first_touch",
            SlaClock.owner == rep.id,
            SlaClock.owner_kind == "rep",
        )
        .order_by(SlaClock.due_at, SlaClock.pk)
        .limit(200)
    ).all()
    cards = load_cards(session, rules, PolicySlaClock(rules.policy), [r.decision_pk for r in rows])
    items = [FocusLead(cards[r.decision_pk], r.pk, r.band, r.due_at) for r in rows if r.decision_pk in cards]
    far = now + timedelta(days=3650)
    items.sort(key=lambda i: (i.due_at or far, i.clock_pk))
    hot = [i for i in items if i.band == "hot"][:HOT_SHOWN]
    others = [i for i in items if i.band != "hot"][:OTHER_SHOWN]
    return hot, others


def run_focus_list(ctx: SchedulerContext, rep_id: str) -> dict[str, Any]:
    """Send ``rep_id``'s focus list for today, if it is time and they have work."""
    loaded = ctx.policy()
    policy = loaded.policy
    at = policy.notifications.focus_list_at
    rep = next((r for r in focus_people(policy) if r.id == rep_id), None)
    if at is None or rep is None:
        return {"skipped": "no focus list for this person in the policy"}
    now = ctx.clock()
    local = now.astimezone(ZoneInfo(rep.timezone))
    today = local.date()
    due = datetime.combine(today, at, ZoneInfo(rep.timezone))
    if local < due:
        yesterday = today - timedelta(days=1)
        with ctx.db.transaction() as session:
            audit_log.append(
                session,
                [AuditRecord(now, ctx.actor, "focus.skipped", f"rep:{rep.id}", {"day": yesterday.isoformat()})],
            )
        return {"skipped": f"before today's focus time; {yesterday} is stale"}
    if _DAYS[today.weekday()] not in working_days(rep):
        return {"skipped": "not a working day"}
    if any(away.start <= today <= away.end for away in rep.out_of_office):
        return {"skipped": "out of office"}
    rules = ReviewRules(policy)
    with ctx.db.transaction() as session:
        hot, others = _waiting(session, rules, rep, now)
        reviews, reviews_total = pending_for(session, rules, PolicySlaClock(policy), rep, now=now, limit=REVIEWS_SHOWN)
        if not (hot or others or reviews):
            return {"sent": False, "why": "nothing waiting"}
        message = focus_message(
            rep.name, today, hot=hot, reviews=reviews, reviews_total=reviews_total, others=others, now=now
        )
        added = enqueue_message(
            session, f"focus:{rep.id}:{today.isoformat()}", text=message.text, blocks=message.blocks, now=now,
            user=str(rep.slack_user),
        )  # fmt: skip
        late = now - due
        if added and late > LATE_AFTER:
            log.warning("focus list for %s sent %s late", rep.id, late)
            audit_log.append(
                session,
                [
                    AuditRecord(
                        now,
                        ctx.actor,
                        "focus.late",
                        f"rep:{rep.id}",
                        {"day": today.isoformat(), "late_seconds": int(late.total_seconds())},
                    )
                ],
            )
    return {"sent": added, "hot": len(hot), "reviews": reviews_total, "others": len(others)}
