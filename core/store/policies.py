"""Stored policy versions and their lifecycle: publish, shadow, promote, roll back, withdraw.

Every version that ever decided anything is kept, by its content hash. Two roles point at
versions: the **champion** decides and acts; the **challenger** (optional) decides every lead
in shadow, never acting (see :mod:`core.store.decide`). Each role change is a
``policy_events`` row (the history that ``rollback`` reads), an audit event and a Slack
announcement, all in the caller's transaction — so it happens whole or not at all.

A version is always validated whole before it takes a role: a file is parsed by the caller,
a stored version is parsed again from its text (the schema may have moved on since it was
stored). A version that fails validation never replaces the active one.

Lifecycle commands take turns: each reads the roles and then changes them, so two at once
(two admins promoting the same challenger) would both act on what they read — the second
promoting the champion over itself. On PostgreSQL each command first takes a transaction
advisory lock (:func:`_take_turn`); on SQLite every ``transaction()`` already holds the
database's one write lock. They take turns with deciding too: batches that follow the
champion hold its row ``FOR SHARE`` (see :mod:`core.store.decide`), so a rollback waits for the
batches in flight, and the batches after it see the new champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from core.errors import CoreError, PolicyError
from core.learning.announce import announcement_channels, policy_message
from core.policy import LoadedPolicy, parse_policy
from core.store import outbox
from core.store.audit_log import AuditRecord, append
from core.store.models import PolicyEvent, PolicyRole, PolicyVersion

__all__ = [
    "LifecycleError",
    "RoleChange",
    "challenger",
    "champion",
    "ensure_version",
    "history",
    "load_stored",
    "promote",
    "publish",
    "resolve_version",
    "rollback",
    "rollback_target",
    "withdraw",
]


class LifecycleError(CoreError):
    """A lifecycle command that cannot be applied as asked (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class RoleChange:
    """What a lifecycle command did."""

    action: str  # publish | shadow | promote | rollback | withdraw
    version: str
    role: str | None
    previous: str | None


def ensure_version(session: Session, loaded: LoadedPolicy, *, now: datetime, by: str) -> bool:
    """Store this policy version if it is new (audited); returns whether it was added."""
    if session.execute(select(PolicyVersion.version).where(PolicyVersion.version == loaded.version)).first():
        return False
    session.add(
        PolicyVersion(
            version=loaded.version,
            name=loaded.policy.name,
            source=loaded.source,
            text=loaded.text,
            created_at=now,
            created_by=by,
        )
    )
    session.flush()  # roles and history rows refer to it
    append(session, [AuditRecord(now, by, "policy.stored", f"policy:{loaded.version}", {"source": loaded.source})])
    return True


def _role(session: Session, role: str) -> str | None:
    return session.execute(select(PolicyRole.version).where(PolicyRole.role == role)).scalar_one_or_none()


def champion(session: Session) -> str | None:
    """The version that decides and acts, if one was published."""
    return _role(session, "champion")


def challenger(session: Session) -> str | None:
    """The version deciding in shadow, if any."""
    return _role(session, "challenger")


def resolve_version(session: Session, ref: str) -> str:
    """A stored version from its hash, a unique prefix (≥ 4 characters), or a role name."""
    if ref in ("champion", "challenger"):
        found = _role(session, ref)
        if found is None:
            raise LifecycleError(f"no {ref} is published")
        return found
    if len(ref) < 4:
        raise LifecycleError(f"'{ref}' is too short to name a version: give at least 4 characters")
    matches = (
        session.execute(select(PolicyVersion.version).where(PolicyVersion.version.startswith(ref, autoescape=True)))
        .scalars()
        .all()
    )
    if not matches:
        raise LifecycleError(f"no stored policy version '{ref}' (see `loopgate policy history`)")
    if len(matches) > 1:
        raise LifecycleError(f"'{ref}' matches several versions: {', '.join(sorted(matches))}")
    return matches[0]


def load_stored(session: Session, version: str) -> LoadedPolicy:
    """A stored version, validated whole again (raises ``PolicyError`` if it no longer is)."""
    text = session.execute(select(PolicyVersion.text).where(PolicyVersion.version == version)).scalar_one_or_none()
    if text is None:
        raise LifecycleError(f"no stored policy version '{version}'")
    loaded = parse_policy(text, f"stored:{version}")
    if loaded.version != version:
        # the schema's defaults moved since it was stored: the same text now means something else
        raise LifecycleError(
            f"stored version {version} now validates as {loaded.version} (defaults changed); "
            "publish it again from a file"
        )
    return loaded


# any fixed number of our own: the key of the advisory lock lifecycle commands take turns on
_LIFECYCLE_LOCK = 0x6C67_706F_6C69  # "lgpoli"


def _take_turn(session: Session) -> None:
    """Wait until no other lifecycle command is in flight (see the module doc); held until the
    caller's transaction ends. Taken before the roles are read, so what is read stays true.

    Then the champion's row, before anything else is locked (a new version's audit event locks
    the audit head, which a deciding batch also takes after the champion): waits for the
    batches that hold it, and the next ones wait for this command."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LIFECYCLE_LOCK})
        session.execute(select(PolicyRole.role).where(PolicyRole.role == "champion").with_for_update())


def _assign(session: Session, role: str, version: str, *, now: datetime, by: str) -> str | None:
    """Give ``role`` to ``version``; returns who had it. The row is updated in place: a batch
    waiting on it then reads the new version (had it been deleted and inserted again, the
    waiting batch would find no champion at all, and decide with its stale engine)."""
    previous = _role(session, role)
    if previous is None:
        session.add(PolicyRole(role=role, version=version, since=now, by=by))
    else:
        session.execute(update(PolicyRole).where(PolicyRole.role == role).values(version=version, since=now, by=by))
    session.flush()
    return previous


_AUDIT_KINDS = {
    "publish": "published",
    "shadow": "shadowed",
    "promote": "promoted",
    "rollback": "rolled_back",
    "withdraw": "withdrawn",
}


def _record(
    session: Session,
    loaded: LoadedPolicy | None,
    change: RoleChange,
    *,
    now: datetime,
    by: str,
    note: str | None,
) -> RoleChange:
    """History row, audit event and announcement (in the channels of ``loaded``, if given)."""
    name = loaded.policy.name if loaded is not None else _stored_name(session, change.version)
    session.add(
        PolicyEvent(
            at=now,
            action=change.action,
            version=change.version,
            role=change.role,
            previous=change.previous,
            by=by,
            note=note,
        )
    )
    append(
        session,
        [
            AuditRecord(
                now,
                by,
                f"policy.{_AUDIT_KINDS[change.action]}",
                f"policy:{change.version}",
                {"role": change.role, "previous": change.previous, "name": name, "note": note},
            )
        ],
    )
    for channel in announcement_channels(loaded.policy) if loaded is not None else []:
        payload = policy_message(
            channel, change.action, change.version, name, by=by, previous=change.previous, note=note
        )
        key = f"slack.message:policy:{change.action}:{change.version}:{now.isoformat()}:{channel}"
        outbox.enqueue(session, "slack.message", key[:200], payload, now=now)
    session.flush()
    return change


def publish(
    session: Session,
    loaded: LoadedPolicy,
    *,
    now: datetime,
    by: str,
    shadow: bool = False,
    note: str | None = None,
) -> RoleChange | None:
    """Make a validated policy the champion, or (``shadow``) the challenger.

    Returns ``None`` when the version already holds that role (nothing to do).
    """
    _take_turn(session)
    ensure_version(session, loaded, now=now, by=by)
    current_champion = champion(session)
    if shadow:
        if loaded.version == current_champion:
            raise LifecycleError(f"{loaded.version} is the champion; a challenger must differ from it")
        if loaded.version == challenger(session):
            return None
        previous = _assign(session, "challenger", loaded.version, now=now, by=by)
        return _record(
            session, loaded, RoleChange("shadow", loaded.version, "challenger", previous), now=now, by=by, note=note
        )
    if loaded.version == current_champion:
        return None
    if challenger(session) == loaded.version:
        session.execute(delete(PolicyRole).where(PolicyRole.role == "challenger"))
    previous = _assign(session, "champion", loaded.version, now=now, by=by)
    return _record(
        session, loaded, RoleChange("publish", loaded.version, "champion", previous), now=now, by=by, note=note
    )


def promote(session: Session, *, now: datetime, by: str, note: str | None = None) -> RoleChange:
    """The challenger becomes the champion (validated whole again first)."""
    _take_turn(session)
    version = challenger(session)
    if version is None:
        raise LifecycleError("no challenger to promote: publish one with `loopgate policy publish FILE --shadow`")
    loaded = load_stored(session, version)
    session.execute(delete(PolicyRole).where(PolicyRole.role == "challenger"))
    previous = _assign(session, "champion", version, now=now, by=by)
    return _record(session, loaded, RoleChange("promote", version, "champion", previous), now=now, by=by, note=note)


def rollback(
    session: Session, version: str | None = None, *, now: datetime, by: str, note: str | None = None
) -> RoleChange:
    """Make ``version`` — by default the champion before the current one — the champion.

    The default steps back along the champions like an undo: rolling back twice restores the
    champion before the one restored first, never the version just rolled away from (see
    :func:`rollback_target`)."""
    _take_turn(session)
    current = champion(session)
    if version is None:
        if current is None:
            raise LifecycleError("nothing to roll back: no champion is published")
        version = rollback_target(session, current)
        if version is None:
            raise LifecycleError(f"{current} is the first champion: name a VERSION to roll back to")
    else:
        version = resolve_version(session, version)
    if version == current:
        raise LifecycleError(f"{version} is already the champion")
    loaded = load_stored(session, version)
    if challenger(session) == version:
        session.execute(delete(PolicyRole).where(PolicyRole.role == "challenger"))
    previous = _assign(session, "champion", version, now=now, by=by)
    return _record(session, loaded, RoleChange("rollback", version, "champion", previous), now=now, by=by, note=note)


def rollback_target(session: Session, current: str) -> str | None:
    """What a plain rollback restores: the champion below the current one on the stack of
    champions the history builds, or None when it is the only one.

    A publish or promote puts its version on the stack; a rollback to a version on the stack
    takes everything above it off again (an undo), a rollback to any other version puts it on.
    Reading only "what the current champion replaced" sent a second rollback back to the
    version the first one had just rolled away from: two rollbacks toggled between two
    versions instead of stepping back twice."""
    stack: list[str] = []
    events = session.execute(
        select(PolicyEvent.action, PolicyEvent.version).where(PolicyEvent.role == "champion").order_by(PolicyEvent.pk)
    )
    for action, version in events:
        below = stack[:-1]
        if action == "rollback" and version in below:
            del stack[len(below) - below[::-1].index(version) :]  # keep up to its last place
        elif not stack or stack[-1] != version:
            stack.append(version)
    if len(stack) < 2 or stack[-1] != current:
        return None
    return stack[-2]


def withdraw(session: Session, *, now: datetime, by: str, note: str | None = None) -> RoleChange:
    """Stop shadowing: the challenger loses its role (its shadow decisions stay).

    Works even when the stored challenger no longer validates — that is when it is needed
    most; the announcement then goes to the champion's channels.
    """
    _take_turn(session)
    version = challenger(session)
    if version is None:
        raise LifecycleError("no challenger is published")
    session.execute(delete(PolicyRole).where(PolicyRole.role == "challenger"))
    announcer: LoadedPolicy | None = None
    for candidate in (version, champion(session)):
        if candidate is None:
            continue
        try:
            announcer = load_stored(session, candidate)
            break
        except (PolicyError, LifecycleError):
            continue
    return _record(session, announcer, RoleChange("withdraw", version, None, version), now=now, by=by, note=note)


def _stored_name(session: Session, version: str) -> str:
    name = session.execute(select(PolicyVersion.name).where(PolicyVersion.version == version)).scalar_one_or_none()
    return name or version


def history(session: Session) -> list[PolicyEvent]:
    """Every lifecycle change, oldest first."""
    return list(session.execute(select(PolicyEvent).order_by(PolicyEvent.pk)).scalars())
