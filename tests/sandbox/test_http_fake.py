"""The fake-service base behaves like a service: routes, logs, faults, TLS, keep-alive."""

from __future__ import annotations

import requests

from loopgate.sandbox.http import FakeRequest, FakeResponse, FakeService


class Echo(FakeService):
    name = "echo"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.route("POST", r"^/echo/(?P<word>\w+)$", self._echo)

    def _echo(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"word": req.match["word"], "body": req.json(), "q": req.arg("q")})


def test_given_a_route_when_called_then_answered_and_logged() -> None:
    with Echo() as fake:
        r = requests.post(f"{fake.url}/echo/hi?q=1", json={"a": 1}, timeout=5)
        assert r.json() == {"word": "hi", "body": {"a": 1}, "q": "1"}
        assert [c.path for c in fake.calls("/echo")] == ["/echo/hi"]
        assert requests.get(f"{fake.url}/nope", timeout=5).status_code == 404


def test_given_an_injected_fault_when_called_then_it_fails_that_many_times_then_recovers() -> None:
    with Echo() as fake:
        fake.inject(r"^/echo/", 429, times=2, headers={"Retry-After": "3"}, body={"policyName": "TEN_SECONDLY_ROLLING"})
        codes = [requests.post(f"{fake.url}/echo/x", json=None, timeout=5) for _ in range(3)]
        assert [r.status_code for r in codes] == [429, 429, 200]
        assert codes[0].headers["Retry-After"] == "3"


def test_given_tls_when_called_with_the_fake_ca_then_https_works() -> None:
    with Echo(tls=True) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        session = requests.Session()
        session.trust_env = False  # the machine's REQUESTS_CA_BUNDLE must not override ours
        r = session.post(f"{fake.url}/echo/tls", json=None, verify=str(fake.ca_bundle), timeout=5)
        assert r.json()["word"] == "tls"


def test_given_a_buggy_route_when_called_then_500_and_the_error_is_recorded() -> None:
    class Buggy(FakeService):
        def __init__(self) -> None:
            super().__init__()
            self.route("GET", r"^/boom$", lambda req: 1 / 0)  # type: ignore[arg-type,return-value]

    with Buggy() as fake:
        assert requests.get(f"{fake.url}/boom", timeout=5).status_code == 500
        assert fake.errors and "ZeroDivisionError" in fake.errors[0]
