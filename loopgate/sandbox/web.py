"""The sandbox web page: the fake Slack workspace and the fake CRMs' records in a browser.

One static page (:file:`web/index.html`, plain JavaScript, no build) and a few JSON routes:

* ``GET /api/state?user=U…&channel=C…`` — the channels and DMs, the chosen one's messages
  (the real Block Kit loopgate posted), the acting user's Home tab as published, open modals
  and ephemeral replies, and the CRM records loopgate has written to;
* ``POST /api/click`` and ``POST /api/submit`` — a button click (on a message or the Home
  tab) or a modal submission, sent through :meth:`FakeSlack.click` / :meth:`FakeSlack.submit`:
  the bot receives the signed payload exactly as from Slack, so what works here works in Slack;
* ``POST /api/home`` and ``POST /api/command`` — the acting user opens the app's Home tab
  (``app_home_opened``: the bot publishes it) or runs ``/loopgate …`` (the answer is theirs only);
* ``POST /api/lead`` — a new lead in one of the CRMs (the next sync decides it);
* ``GET /files/<id>`` — an uploaded file (the digest chart).

Everything from the CRMs and from Slack is rendered as text by the page (it escapes before it
formats mrkdwn); the server sends data only.
"""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

from loopgate.sandbox.http import FakeRequest, FakeResponse, FakeService
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce
from loopgate.sandbox.slack import FakeSlack

__all__ = ["SandboxWeb"]

MESSAGES_SHOWN = 60
RECORDS_SHOWN = 80
_SF_FIELDS = ("Loopgate_Score__c", "Loopgate_Band__c", "Loopgate_Status__c", "Loopgate_Reason__c",
              "Loopgate_Next_Action__c")  # fmt: skip
_HS_FIELDS = ("loopgate_score", "loopgate_band", "loopgate_status", "loopgate_reason", "loopgate_next_action")


class SandboxWeb(FakeService):
    """Serves the page on ``host:port`` (default 127.0.0.1:3000)."""

    name = "sandbox-web"

    def __init__(
        self,
        slack: FakeSlack,
        salesforce: FakeSalesforce,
        hubspot: FakeHubSpot,
        *,
        people: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 3000,
    ) -> None:
        super().__init__(host=host, port=port)
        self.slack, self.salesforce, self.hubspot = slack, salesforce, hubspot
        self.people = people or {}  # CRM owner id → a person's name
        self._new = itertools.count(1)
        self.route("GET", r"^/$", self._page)
        self.route("GET", r"^/api/state$", self._state)
        self.route("GET", r"^/files/(?P<id>F\w+)$", self._file)
        self.route("POST", r"^/api/click$", self._click)
        self.route("POST", r"^/api/submit$", self._submit)
        self.route("POST", r"^/api/lead$", self._lead)
        self.route("POST", r"^/api/home$", self._home)
        self.route("POST", r"^/api/command$", self._command)

    def _page(self, _req: FakeRequest) -> FakeResponse:
        page = resources.files("loopgate.sandbox").joinpath("web/index.html").read_bytes()
        return FakeResponse(200, page, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    # --- reading ------------------------------------------------------------------------------

    def _state(self, req: FakeRequest) -> FakeResponse:
        if len(self.requests) > 1000:  # a page polls once a second: keep the request log short
            self.reset_log()
        user = req.arg("user") or "U01REV"
        wanted = req.arg("channel")
        snap = self.slack.snapshot()
        channels = [
            {"id": c["id"], "name": c["name"], "kind": c["kind"], "user": c["user"], "count": len(c["messages"])}
            for c in snap["channels"]
            if c["kind"] != "im" or c["messages"]
        ]
        chosen = next((c for c in snap["channels"] if c["id"] == wanted), None)
        return FakeResponse(
            200,
            {
                "users": [u for u in snap["users"] if not u.get("is_bot")],
                "channels": channels,
                "channel": {**chosen, "messages": chosen["messages"][-MESSAGES_SHOWN:]} if chosen else None,
                "home": snap["homes"].get(user),
                "views": [v for v in snap["open_views"] if v["user"] == user],
                "ephemerals": [e for e in snap["ephemerals"] if e["user"] == user][-5:],
                "crm": self._records(),
            },
            {"Cache-Control": "no-store"},
        )

    def _records(self) -> list[dict[str, Any]]:
        """The CRM records loopgate has decided (its status field is set), newest write first."""
        rows: list[dict[str, Any]] = []
        with self.salesforce._data:
            for record in self.salesforce.records["Lead"].values():
                if record.get("Loopgate_Status__c") is None or record.get("IsDeleted"):
                    continue
                rows.append({
                    "crm": "salesforce", "id": record["Id"],
                    "name": f"{record.get('FirstName') or ''} {record.get('LastName') or ''}".strip(),
                    "company": record.get("Company"), "owner": self._owner(record.get("OwnerId")),
                    "fields": {k.removeprefix("Loopgate_").removesuffix("__c").lower(): record.get(k)
                               for k in _SF_FIELDS},
                    "modified": str(record.get("SystemModstamp")),
                })  # fmt: skip
        with self.hubspot._data:
            for contact in self.hubspot.objects["contacts"].values():
                p = contact["properties"]
                if p.get("loopgate_status") is None:
                    continue
                rows.append({
                    "crm": "hubspot", "id": contact["id"],
                    "name": f"{p.get('firstname') or ''} {p.get('lastname') or ''}".strip(),
                    "company": p.get("company"), "owner": self._owner(p.get("hubspot_owner_id")),
                    "fields": {k.removeprefix("loopgate_"): p.get(k) for k in _HS_FIELDS},
                    "modified": str(p.get("lastmodifieddate")),
                })  # fmt: skip
        rows.sort(key=lambda r: r["modified"], reverse=True)
        return rows[:RECORDS_SHOWN]

    def _owner(self, owner_id: Any) -> str | None:
        if not owner_id:
            return None
        key = str(owner_id)
        return self.people.get(key) or self.people.get(key[:15]) or key

    def _file(self, req: FakeRequest) -> FakeResponse:
        file = self.slack.files.get(req.match["id"])
        if file is None or file.get("content") is None:
            return FakeResponse(404, "no such file")
        kind = "image/png" if str(file.get("name", "")).endswith(".png") else "application/octet-stream"
        return FakeResponse(200, bytes(file["content"]), {"Content-Type": kind})

    # --- acting -------------------------------------------------------------------------------

    def _click(self, req: FakeRequest) -> FakeResponse:
        body = req.json() or {}
        try:
            if body.get("home"):
                delivery = self.slack.click(str(body["user"]), str(body["action_id"]), home=True,
                                            value=body.get("value"))  # fmt: skip
            else:
                delivery = self.slack.click(
                    str(body["user"]), str(body["action_id"]), channel=str(body["channel"]), ts=str(body["ts"]),
                    value=body.get("value"),
                )  # fmt: skip
        except (KeyError, StopIteration, AssertionError) as exc:
            return FakeResponse(400, {"ok": False, "error": f"cannot click that: {exc}"})
        return FakeResponse(200, {"ok": delivery.status == 200, "status": delivery.status})

    def _submit(self, req: FakeRequest) -> FakeResponse:
        body = req.json() or {}
        try:
            delivery = self.slack.submit(str(body["view_id"]), str(body["user"]), dict(body.get("values") or {}))
        except (KeyError, AssertionError) as exc:
            return FakeResponse(400, {"ok": False, "error": f"cannot submit that: {exc}"})
        view = self.slack.views.get(str(body["view_id"]))
        return FakeResponse(200, {"ok": delivery.status == 200, "errors": view.errors if view else {}})

    def _unknown_user(self, user: str) -> FakeResponse | None:
        """The refusal for acting as someone the workspace does not have (else ``None``)."""
        if user in self.slack.users:
            return None
        return FakeResponse(400, {"ok": False, "error": f"no such user {user!r}"})

    def _home(self, req: FakeRequest) -> FakeResponse:
        body = req.json() or {}
        user = str(body.get("user") or "")
        if refused := self._unknown_user(user):
            return refused
        delivery = self.slack.open_home(user)
        return FakeResponse(200, {"ok": delivery.status == 200, "status": delivery.status})

    def _command(self, req: FakeRequest) -> FakeResponse:
        """``/loopgate <text>`` in a channel (or, from anywhere else, the user's DM with the app)."""
        body = req.json() or {}
        user = str(body.get("user") or "")
        if refused := self._unknown_user(user):
            return refused
        channel = body.get("channel")
        where = str(channel) if channel in self.slack.channels else None
        delivery = self.slack.command(user, str(body.get("text") or "")[:500], channel=where)
        return FakeResponse(200, {"ok": delivery.status == 200, "status": delivery.status})

    def _lead(self, req: FakeRequest) -> FakeResponse:
        body = req.json() or {}
        n = next(self._new)
        company = str(body.get("company") or f"Walk-in Co {n}")
        domain = f"walkin{n}.test"
        if body.get("crm") == "hubspot":
            record = self.hubspot.create("contacts", {
                "firstname": "New", "lastname": f"Lead {n}", "email": f"new{n}@{domain}", "jobtitle": "VP Sales",
                "company": company, "website": domain, "industry": str(body.get("industry") or "software"),
                "numemployees": str(body.get("employees") or 450), "country": "US", "lifecyclestage": "lead",
            })  # fmt: skip
        else:
            record = self.salesforce.create("Lead", FirstName="New", LastName=f"Lead {n}", Email=f"new{n}@{domain}",
                                            Title="VP Sales", Company=company, Website=domain,
                                            Industry=str(body.get("industry") or "software"),
                                            NumberOfEmployees=int(body.get("employees") or 450), Country="US",
                                            LeadSource="web", Status="Open")  # fmt: skip
        return FakeResponse(200, {"ok": True, "id": record})
