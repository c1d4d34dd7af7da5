"""Policy files: valid ones load whole, invalid ones name every problem with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import PolicyError
from core.policy import Policy, parse_policy

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "policy.yaml").read_text()


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    return [str(p) for p in info.value.problems]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_given_the_example_policy_when_parsed_then_every_section_is_present() -> None:
    loaded = parse_policy(EXAMPLE, "examples/policy.yaml")
    p = loaded.policy
    assert len(loaded.version) == 8
    assert {t.id for t in p.teams} == {"mm", "ent"}
    assert list(p.segments) == ["enterprise", "mid_market", "smb"]
    assert p.escalation.custom[0].code == "competitor_domain"
    assert p.digest is not None and p.digest.channel == "C0LEADERS"


def test_given_yaml_1_1_traps_when_parsed_then_norway_and_times_survive() -> None:
    loaded = parse_policy(EXAMPLE, "p.yaml")
    countries = loaded.policy.scoring.fit[5].in_
    assert countries is not None and "NO" in countries
    assert str(loaded.policy.notifications.focus_list_at) == "08:30:00"


def test_given_only_comments_and_layout_change_when_parsed_then_version_is_the_same() -> None:
    flow = "bands: {hot: 75, warm: 45}"
    assert flow in EXAMPLE
    reformatted = "# a new comment\n" + EXAMPLE.replace(flow, "bands:\n    hot: 75\n    warm: 45")
    assert parse_policy(reformatted, "p.yaml").version == parse_policy(EXAMPLE, "p.yaml").version


def test_given_a_content_change_when_parsed_then_version_changes() -> None:
    changed = EXAMPLE.replace("bands: {hot: 75, warm: 45}", "bands: {hot: 80, warm: 45}")
    assert parse_policy(changed, "p.yaml").version != parse_policy(EXAMPLE, "p.yaml").version


@pytest.mark.parametrize(
    ("old", "new", "line_needle", "expected"),
    [
        ("to: {team: ent}}", "to: {team: emea}}", "name: emea_enterprise", "routing[3].to.team: unknown team 'emea'"),
        (
            "daily_capacity: 40",
            "daily_capacty: 40",
            "id: ana",
            "reps[0].daily_capacty: unknown key 'daily_capacty' (did you mean 'daily_capacity'?)",
        ),
        ("weight: 2,", "weight: two,", "id: ana", "reps[0].weight: Input should be a valid integer"),
        (
            "half_life_days: 14",
            "half_life_days: 14\n    half_life_days: 7",
            "half_life_days: 7",
            "scoring.intent.half_life_days: duplicate key 'half_life_days'",
        ),
        (
            "segment: enterprise}, to",
            "segment: enterprize}, to",
            "name: emea_enterprise",
            "routing[3].when.segment: unknown segment 'enterprize'",
        ),
        (
            "enterprise: {employees: {gte: 2000}}",
            "enterprise: {band: hot}",
            "enterprise: {band: hot}",
            "segments.enterprise.band: 'band' is not known yet at this point of the decision",
        ),
        (
            "timezone: Europe/Berlin,",
            "timezone: Europe/Berln,",
            "timezone: Europe/Berln",
            "reps[3].timezone: unknown time zone 'Europe/Berln'",
        ),
        ("id: ben,", "id: ana,", "id: ana, name: Ben", "reps[1].id: duplicate rep or queue id 'ana'"),
        (
            "Call today: strong fit ({top_signal})",
            "Call today: strong fit ({topsignal})",
            "strong fit ({topsignal})",
            "next_best_action[5].label: unknown placeholder '{topsignal}'",
        ),
        ("review: 2h", "review: 2 hours", "review: 2 hours", "sla.review: invalid duration '2 hours'"),
        (
            "competitor_domain]",
            "competitor_dom]",
            "hard: [strategic_account",
            "escalation.hard[5]: unknown trigger 'competitor_dom'",
        ),
        ("manager: lee,", "manager: leo,", "id: mm, name: Mid-market", "teams[0].manager: unknown rep 'leo'"),
        (
            "{code: capacity, label: Owner has no capacity}",
            "{code: timing, label: Owner has no capacity}",
            "label: Bad timing",
            "reason_codes[6].code: duplicate reason code 'timing'",
        ),
        (
            "fallback_queue: unassigned",
            "fallback_queue: overflow",
            "fallback_queue: overflow",
            "fallback_queue: unknown queue 'overflow'",
        ),
        (
            'crm: {salesforce: 0055e000001BBBB, hubspot: "102"}',
            'crm: {salesforce: 0055e000001AAAA, hubspot: "102"}',
            "timezone: America/Chicago",
            "reps[1].crm.salesforce: duplicate salesforce owner id",
        ),
        (
            "{signal: industry, in: [software, fintech, saas, internet], points: 15, label: target industry}",
            "{signal: industry, within: [software], points: 15}",
            "signal: industry",
            "scoring.fit[2].within: unknown key 'within'",
        ),
        (
            "when: {lead_source: marketplace}",
            "when: {lead_source: {in: [[marketplace]]}}",
            "name: marketplace_listings",
            "routing[2].when.lead_source.in: 'in' takes a list of single values",
        ),
        (
            "in: [tier1, tier2]",
            "in: [{a: 1}]",
            "signal: account.tier",
            "scoring.fit[6].in: 'in' takes a list of single values",
        ),
        (
            'working_hours: {start: "08:00", end: "18:00"',
            'working_hours: {start: "08:00Z", end: "18:00"',
            "working_hours:",
            "reps[0].working_hours.start: '08:00:00+00:00' carries a time zone",
        ),
        (
            'focus_list_at: "08:30"',
            'focus_list_at: "08:30+02:00"',
            "focus_list_at:",
            "notifications.focus_list_at: '08:30:00+02:00' carries a time zone",
        ),
        (
            "within: 14d}",
            "within: 99999999999d}",
            "within: 99999999999d}",
            "escalation.customer_signal.within: invalid duration '99999999999d': too long",
        ),
        (
            r'matches: "(?i)\\b(student|intern|job seeker)\\b"',
            r'matches: "^(\\w+\\s?)*$"',
            'signal: title, matches: "^(',
            r"scoring.fit[4].matches: '^(\w+\s?)*$' repeats a group that itself repeats",
        ),
        ("review: 2h", "review: 999999990d", "review: 999999990d", "sla.review: SLA '999999990d' is too long"),
        # under a microsecond rounds to no time at all: a zero-length SLA
        (
            "first_touch: {hot: 15m",
            "first_touch: {hot: 0.0000001s",
            "first_touch: {hot: 0.0000001s",
            "sla.first_touch.hot: invalid duration '0.0000001s': must be at least 1 microsecond",
        ),
        (
            "within: 24h}",
            "within: 0.000000000001d}",
            "within: 0.000000000001d}",
            "escalation.score_volatility.within: invalid duration '0.000000000001d': must be at least 1 microsecond",
        ),
        ("review: 2h", "review: 0s", "review: 0s", "sla.review: invalid duration '0s': must be greater than zero"),
        (
            "first_touch: {hot: 15m",
            "first_touch: {hot: 366d",
            "first_touch: {hot: 366d",
            "sla.first_touch.hot: SLA '366d' is too long: at most 365 days",
        ),
        (
            "{after: 30m, do: reroute}",
            "{after: 8761h, do: reroute}",
            "after: 8761h",
            "sla.on_breach[1].after: SLA '8761h' is too long",
        ),
        # the scheduler adds the interval to each run: beyond datetime's range the job died
        (
            "sync: {interval: 5m",
            "sync: {interval: 999999d",
            "sync: {interval: 999999d",
            "sync.interval: sync interval '999999d' is too long: at most 7 days",
        ),
        ("hubspot: 10m}", "hubspot: 8d}", "hubspot: 8d}", "sync.hubspot: sync interval '8d' is too long"),
        # a reason code offered in no modal: a person can never choose it
        (
            "applies_to: [override, flag]",
            "applies_to: []",
            "applies_to: []",
            "reason_codes[",
        ),
    ],
)
def test_given_a_broken_policy_when_parsed_then_the_error_names_file_line_and_path(
    old: str, new: str, line_needle: str, expected: str
) -> None:
    assert old in EXAMPLE, f"fixture drifted: {old!r} not in the example"
    text = EXAMPLE.replace(old, new, 1)
    problems = _problems(text)
    line = _line_of(text, line_needle)
    assert any(p.startswith(f"p.yaml:{line} {expected}") for p in problems), problems


ANA_HOURS = 'working_hours: {start: "08:00", end: "18:00", days: [mon, tue, wed, thu, fri]}'


@pytest.mark.parametrize(
    ("hours", "sla", "needle", "expected"),
    [
        (
            '{start: "09:00", end: "10:00", days: [mon]}',
            "review: 8760h",
            "review: 8760h",
            "sla.review: '8760h' of ana's working hours falls due about 168 years after it starts; "
            "with sla.business_hours an SLA must fall due within 5 years",
        ),
    ],
)
def test_given_business_hours_when_a_reps_hours_never_reach_an_sla_then_rejected_with_file_and_line(
    hours: str, sla: str, needle: str, expected: str
) -> None:
    assert ANA_HOURS in EXAMPLE and "business_hours: false" in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(ANA_HOURS, f"working_hours: {hours}").replace(
        "business_hours: false", "business_hours: true"
    )
    text = text.replace("review: 2h", sla, 1)
    assert _problems(text) == [f"p.yaml:{_line_of(text, needle)} {expected}"]


SUPPRESS_PAUSE = "{when: {trigger: customer_signal, band: cold}, reason: customer_asked_to_pause}"


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        # anything but text or a mapping used to pass, then every decision did `"in" in None`
        ("null", "suppress[2].when.trigger: 'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}"),
        ("3", "suppress[2].when.trigger: 'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}"),
        ("true", "suppress[2].when.trigger: 'trigger' takes one trigger code or {in: [...]} or {not_in: [...]}"),
        # a misspelt code never matched: the rule was silently dead
        (
            "customer_signl",
            "suppress[2].when.trigger: unknown trigger 'customer_signl' (did you mean 'customer_signal'?)",
        ),
        (
            "{in: [vip, customer_signl]}",
            "suppress[2].when.trigger.in: unknown trigger 'customer_signl' (did you mean 'customer_signal'?)",
        ),
        ("{not_in: [3]}", "suppress[2].when.trigger.not_in: unknown trigger '3'"),
        # both operators: the compiled check kept only `in` and dropped `not_in` without a word
        (
            "{in: [vip], not_in: [gray_zone]}",
            "suppress[2].when.trigger: 'trigger' takes one of 'in' or 'not_in', not both",
        ),
        ("{in: []}", "suppress[2].when.trigger.in: 'in' takes a non-empty list"),
        ("{eq: vip}", "suppress[2].when.trigger.eq: unknown operator 'eq'; use one of in, not_in"),
    ],
)
def test_given_a_trigger_condition_that_is_not_a_known_code_when_parsed_then_rejected_with_file_and_line(
    trigger: str, expected: str
) -> None:
    assert SUPPRESS_PAUSE in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(SUPPRESS_PAUSE, SUPPRESS_PAUSE.replace("trigger: customer_signal", f"trigger: {trigger}"))
    problems = _problems(text)
    assert problems == [f"p.yaml:{_line_of(text, 'reason: customer_asked_to_pause')} {expected}"], problems


@pytest.mark.parametrize("trigger", ["competitor_domain", "{not_in: [competitor_domain, vip]}", "low_confidence"])
def test_given_a_trigger_condition_on_a_builtin_or_custom_code_when_parsed_then_the_policy_loads(
    trigger: str,
) -> None:
    text = EXAMPLE.replace("trigger: customer_signal, band: cold", f"trigger: {trigger}, band: cold", 1)
    assert text != EXAMPLE, "fixture drifted"
    assert parse_policy(text, "p.yaml").policy.suppress[2].when["trigger"] is not None


@pytest.mark.parametrize("business_hours", ["false", "true"])
def test_given_a_rep_with_no_working_day_when_parsed_then_rejected_with_file_and_line(business_hours: str) -> None:
    # the focus-list job schedules on a rep's working days: none made its cron trigger raise
    # in every scheduler lease round, whether or not SLA clocks use business hours
    assert ANA_HOURS in EXAMPLE and "business_hours: false" in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(ANA_HOURS, 'working_hours: {start: "09:00", end: "17:00", days: []}')
    text = text.replace("business_hours: false", f"business_hours: {business_hours}")
    assert _problems(text) == [
        f"p.yaml:{_line_of(text, 'days: []')} reps[0].working_hours.days: a rep needs at least one working day "
        "(leave 'days' out for mon–fri)"
    ]


BEN_CRM = 'crm: {salesforce: 0055e000001BBBB, hubspot: "102"}'


@pytest.mark.parametrize(
    ("other", "shown"),
    [
        # the 18-character form of ana's 15-character id: one Salesforce user, two reps; the roster
        # keys owners by the first 15 characters, so the last rep silently took both
        ("0055e000001AAAAAA4", "'0055e000001AAAAAA4' (the same as '0055e000001AAAA')"),
        ("0055e000001AAAA", "'0055e000001AAAA'"),
    ],
)
def test_given_one_salesforce_user_on_two_reps_in_15_and_18_characters_when_parsed_then_rejected(
    other: str, shown: str
) -> None:
    assert BEN_CRM in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(BEN_CRM, BEN_CRM.replace("0055e000001BBBB", other))
    assert _problems(text) == [
        f"p.yaml:{_line_of(text, 'timezone: America/Chicago')} reps[1].crm.salesforce: duplicate salesforce owner id "
        + shown
    ]


@pytest.mark.parametrize("other", ["0055e000001AAAAxyz", "0055e000001AAAaAA4", "0055e000001aaaaaa4"])
def test_given_an_18_character_salesforce_id_with_a_wrong_suffix_when_parsed_then_rejected(other: str) -> None:
    # the suffix encodes which of the first 15 are upper case: with a typo there, the id is
    # another user's (or nobody's), and owners would silently fail to map
    text = EXAMPLE.replace(BEN_CRM, BEN_CRM.replace("0055e000001BBBB", other))
    problems = _problems(text)
    assert len(problems) == 1 and f"reps[1].crm.salesforce: '{other}' is not a valid 18-character" in problems[0]
    assert "the last three characters are '" in problems[0], problems


def test_given_salesforce_ids_that_differ_only_in_case_when_parsed_then_they_are_two_users() -> None:
    # a 15-character id is case-sensitive: 0055e000001aaaa is another user than 0055e000001AAAA
    text = EXAMPLE.replace(BEN_CRM, BEN_CRM.replace("0055e000001BBBB", "0055e000001aaaaAAA"))
    assert parse_policy(text, "p.yaml").policy.reps[1].crm.salesforce == "0055e000001aaaaAAA"


@pytest.mark.parametrize("use", ["override", "reassign", "flag"])
def test_given_no_reason_code_for_a_use_when_parsed_then_rejected_with_file_and_line(use: str) -> None:
    # the modal for that button would hold an empty select, which Slack refuses: the button
    # would do nothing, for every lead
    start, end = EXAMPLE.index("reason_codes:\n"), EXAMPLE.index("\n\n", EXAMPLE.index("reason_codes:\n"))
    others = [u for u in ("override", "reassign", "flag") if u != use]
    codes = "reason_codes:\n" + "".join(
        f"  - {{code: {u}_only, label: Only for {u}, applies_to: [{u}]}}\n" for u in others
    ).rstrip("\n")
    text = EXAMPLE[:start] + codes + EXAMPLE[end:]
    assert _problems(text) == [
        f"p.yaml:{_line_of(text, 'reason_codes:')} reason_codes: no reason code applies to {use}: the {use} "
        f"modal would offer no reason to choose (add '{use}' to a code's applies_to, or leave applies_to out)"
    ]


def test_given_business_hours_and_the_longest_slas_on_usual_hours_when_parsed_then_the_policy_loads() -> None:
    text = EXAMPLE.replace("business_hours: false", "business_hours: true").replace("review: 2h", "review: 8760h")
    assert parse_policy(text.replace("first_touch: {hot: 15m", "first_touch: {hot: 365d"), "p.yaml").policy.sla.review


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: Acme Cloud — inbound routing", "name: !!int abc", "'abc' is not a valid !!int value"),
        ("name: Acme Cloud — inbound routing", "name: !!bool maybe", "'maybe' is not a valid !!bool value"),
        ("start: 2026-12-22", "start: !!timestamp xyz", "'xyz' is not a valid !!timestamp value"),
        (
            "name: Acme Cloud — inbound routing",
            "name: !!python/name:os.system x",
            "could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'",
        ),
    ],
)
def test_given_a_tag_its_value_does_not_fit_when_parsed_then_one_error_with_file_and_line(
    old: str, new: str, expected: str
) -> None:
    assert old in EXAMPLE, f"fixture drifted: {old!r} not in the example"
    text = EXAMPLE.replace(old, new, 1)
    assert _problems(text) == [f"p.yaml:{_line_of(text, new)}: YAML value error: {expected}"]


@pytest.mark.parametrize(
    ("placeholder", "plain"),
    [("{score:03d}", "{score}"), ("{name!x}", "{name}"), ("{name:>{score}}", "{name}"), ("{score!r:>4}", "{score}")],
)
def test_given_a_label_placeholder_with_a_format_or_conversion_when_parsed_then_rejected_with_file_and_line(
    placeholder: str, plain: str
) -> None:
    text = EXAMPLE.replace('label: "Add to the nurture sequence"', f'label: "Score {placeholder}"', 1)
    assert text != EXAMPLE, "fixture drifted"
    line = _line_of(text, f"Score {placeholder}")
    assert _problems(text) == [
        f"p.yaml:{line} next_best_action[8].label: placeholder '{placeholder}' has a format or conversion;"
        f" write it plain: {plain}"
    ]


def test_given_several_problems_when_parsed_then_all_are_reported_in_line_order() -> None:
    text = EXAMPLE.replace("to: {team: ent}}", "to: {team: emea}}").replace("manager: lee,", "manager: leo,")
    problems = _problems(text)
    assert len(problems) == 2
    lines = [int(p.split(":")[1].split()[0]) for p in problems]
    assert lines == sorted(lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1: the policy file is empty"),
        ("reps: [a, b\n", "p.yaml:2: YAML syntax error"),
        ("- just\n- a list\n", "p.yaml:1: the policy must be a mapping of sections"),
        ("reps: {\n", "YAML syntax error"),
    ],
)
def test_given_malformed_yaml_when_parsed_then_one_clear_error(text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        ("&loop [*loop]", "a YAML alias (*) inside the value it refers to (&) makes it infinite"),
        ("&loop {mid_market: *loop}", "a YAML alias (*) inside the value it refers to (&) makes it infinite"),
        ("&loop [{all: [*loop]}]", "a YAML alias (*) inside the value it refers to (&) makes it infinite"),
    ],
)
def test_given_an_alias_inside_its_own_anchor_when_parsed_then_one_error_with_file_and_line(
    anchor: str, expected: str
) -> None:
    # the walk that indexes lines followed the alias for ever: RecursionError, no policy error
    old = "  smb: {employees: {lt: 200}}"
    assert old in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(old, f"  smb: {anchor}")
    assert _problems(text) == [f"p.yaml:{_line_of(text, '  smb: &loop')} segments.smb: {expected}"]


def test_given_aliases_that_multiply_when_parsed_then_refused_before_walking_every_copy() -> None:
    # "billion laughs": each level repeats the one before ten times, 10**6 values from 7 lines;
    # every walk of the document (line index, validation, conditions) would visit each copy.
    # laughs4 is the first section that takes the count past the limit (111,111 values)
    levels = ["laughs: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]"]
    levels += [f"laughs{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]
    text = "\n".join(levels) + "\n" + EXAMPLE
    assert _problems(text) == [
        "p.yaml:5 laughs4: the policy holds more than 100000 values once its YAML aliases (*) are expanded; "
        "repeat less through aliases"
    ]


def test_given_an_anchor_reused_through_aliases_when_parsed_then_the_policy_loads() -> None:
    core, emea = "in: [US, CA, GB, DE, FR, NL, NO, SE]", "country: {in: [GB, DE, FR, NL, NO, SE]}"
    assert core in EXAMPLE and emea in EXAMPLE, "fixture drifted"
    text = EXAMPLE.replace(core, "in: &core [US, CA, GB, DE, FR, NL, NO, SE]").replace(emea, "country: {in: *core}")
    when = parse_policy(text, "p.yaml").policy.routing[3].when
    assert when is not None and when["country"]["in"] == ["US", "CA", "GB", "DE", "FR", "NL", "NO", "SE"]


def test_given_yaml_nested_deeper_than_python_can_follow_when_parsed_then_one_error() -> None:
    text = EXAMPLE.replace("name: Acme Cloud — inbound routing", "name: " + "[" * 5000 + "]" * 5000)
    assert _problems(text) == ["p.yaml: the policy nests too deeply to read (fewer levels of [ ] and { }, please)"]


def test_given_a_policy_missing_required_sections_when_parsed_then_each_is_named() -> None:
    problems = _problems("name: empty\n")
    for section in ("reason_codes", "reps", "teams", "scoring", "routing", "fallback_queue", "next_best_action"):
        assert any(f" {section}: required" in p for p in problems), (section, problems)


def test_given_the_schema_when_exported_then_it_is_json_schema_of_the_policy() -> None:
    schema = Policy.model_json_schema(by_alias=True)
    json.dumps(schema)
    assert schema["title"] == "Policy"
    assert {"reps", "teams", "routing", "scoring", "escalation"} <= set(schema["properties"])
    assert "in" in schema["$defs"]["FitRule"]["properties"]
