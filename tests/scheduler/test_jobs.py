"""What the scheduler plans from the policy: every job, its zone and its schedule."""

from __future__ import annotations

from core.policy import LoadedPolicy
from scheduler.focus import focus_people
from scheduler.jobs import job_specs


def test_given_the_policy_when_planning_then_each_person_gets_a_focus_job_in_their_zone_and_days(
    example_policy: LoadedPolicy,
) -> None:
    policy = example_policy.policy
    specs = {s.id: s for s in job_specs(policy)}
    people = [p.id for p in focus_people(policy)]
    assert people == ["ana", "ben", "cy", "dana", "eli", "lee", "mo"]  # reps and managers, not the admin
    assert specs["focus:ana"].schedule == "cron day_of_week=mon,tue,wed,thu,fri hour=8 minute=30 America/New_York"
    assert specs["focus:dana"].schedule.endswith("Europe/Berlin")
    assert specs["digest"].schedule == "cron day_of_week=mon hour=8 minute=0 America/New_York"
    assert {"sla_scan", "trust", "calibration", "tuning", "policy_watch"} <= set(specs)


def test_given_crm_sync_functions_when_planning_then_each_crm_syncs_at_its_policy_interval(
    example_policy: LoadedPolicy,
) -> None:
    specs = {s.id: s for s in job_specs(example_policy.policy, ["hubspot", "salesforce"])}
    assert specs["sync:salesforce"].schedule == "every 300s"  # sync.interval: 5m
    assert specs["sync:hubspot"].schedule == "every 600s"  # sync.hubspot: 10m
    assert "sync:salesforce" not in {s.id for s in job_specs(example_policy.policy)}  # no connector: no job
