"""Secrets never leave the process: not in logs (even at DEBUG, where the HTTP clients log their
requests), not in errors (a revoked token is named by its variable, not its value), not in the
audit export."""

from __future__ import annotations

from tests.reliability.harness import HUBSPOT_TOKEN, RecordingHubSpot, World


def test_given_known_tokens_when_serving_syncing_and_failing_at_debug_level_then_no_secret_is_printed(
    db_url: str,
) -> None:
    with World(db_url, seed=2) as world:
        world.new_leads(6)
        sync = world.spawn("sync", "--crm", "hubspot", LOOPGATE_LOG_LEVEL="DEBUG")
        assert sync.wait(120) == 0, sync.log
        serve = world.serve("--no-scheduler", LOOPGATE_LOG_LEVEL="DEBUG")
        world.until(lambda: world.outbox_waiting() == 0, 60, "the outbox to drain")
        assert world.approve(serve, 2) > 0  # clicks: signed requests, the signing secret at work
        world.until(lambda: world.outbox_waiting() == 0, 60, "the outbox to drain")
        assert serve.stop() == 0
        assert isinstance(world.crm, RecordingHubSpot)
        world.crm.expire_token(HUBSPOT_TOKEN)  # now every CRM call fails with 401
        world.new_leads(1)
        failed = world.spawn("sync", "--crm", "hubspot", LOOPGATE_LOG_LEVEL="DEBUG")
        assert failed.wait(120) != 0
        assert "HUBSPOT_ACCESS_TOKEN" in failed.log  # the error names the variable…
        export = world.audit_export()
        output = world.output
        assert "DEBUG" in output and "loopgate serving" in output  # it did log, in detail
        for secret in world.secrets:
            assert secret not in output  # …never the value
            assert secret not in export
