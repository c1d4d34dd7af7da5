"""The CRM fakes enforce what the real APIs enforce, seen through the real clients, and refuse
what they do not understand instead of answering something plausible."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.salesforce import http_session
from loopgate.sandbox.hubspot import FakeHubSpot
from loopgate.sandbox.salesforce import FakeSalesforce, parse_soql


@pytest.fixture
def org() -> Iterator[tuple[FakeSalesforce, Salesforce]]:
    with FakeSalesforce(page_size=3) as fake:
        client = Salesforce(
            session_id=fake.access_token, instance_url=fake.url, session=http_session(fake.ca_bundle), version="59.0"
        )
        yield fake, client  # type: ignore[misc]


def test_given_soql_outside_the_supported_shapes_when_queried_then_the_fake_refuses_loudly(
    org: tuple[FakeSalesforce, Salesforce],
) -> None:
    _fake, client = org
    for soql in (
        "SELECT Id FROM Lead WHERE Email LIKE '%@acme.com'",
        "SELECT Id FROM Lead ORDER BY CreatedDate DESC",
        "SELECT COUNT() FROM Lead",
        "SELECT Id, Nope__c FROM Lead",
    ):
        with pytest.raises(SalesforceMalformedRequest):
            client.query(soql)


def test_given_more_records_than_a_page_when_queried_then_next_records_url_pages_a_snapshot(
    org: tuple[FakeSalesforce, Salesforce],
) -> None:
    fake, client = org
    ids = [fake.create("Lead", LastName=f"L{i}") for i in range(7)]
    first = client.query("SELECT Id FROM Lead ORDER BY SystemModstamp ASC, Id ASC")
    fake.create("Lead", LastName="created after the query ran")

    records = list(first["records"])
    result = first
    while not result["done"]:
        result = client.query_more(result["nextRecordsUrl"], identifier_is_url=True)
        records += result["records"]

    assert [r["Id"] for r in records] == sorted(ids) and first["totalSize"] == 7


def test_given_a_keyset_template_when_parsed_then_the_tie_break_is_exact() -> None:
    query = parse_soql(
        "SELECT Id FROM Lead WHERE (SystemModstamp > 2026-11-20T20:00:00Z OR (SystemModstamp = "
        "2026-11-20T20:00:00Z AND Id > '00Q5e0000000002EAA')) ORDER BY SystemModstamp ASC, Id ASC"
    )
    t = datetime(2026, 11, 20, 20, tzinfo=UTC)
    assert query.where is not None
    assert not query.where({"SystemModstamp": t, "Id": "00Q5e0000000002EAA"})
    assert query.where({"SystemModstamp": t, "Id": "00Q5e0000000003EAA"})


def test_given_more_than_200_records_when_updating_a_collection_then_the_call_is_refused(
    org: tuple[FakeSalesforce, Salesforce],
) -> None:
    fake, client = org
    lead = fake.create("Lead", LastName="x")
    records = [{"attributes": {"type": "Lead"}, "id": lead, "Title": "t"}] * 201
    with pytest.raises(SalesforceMalformedRequest) as caught:
        client.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})
    assert "EXCEEDED_ID_LIMIT" in str(caught.value)


def test_given_all_or_none_with_one_bad_record_when_updating_then_nothing_is_applied(
    org: tuple[FakeSalesforce, Salesforce],
) -> None:
    fake, client = org
    good, gone = fake.create("Lead", LastName="good"), fake.create("Lead", LastName="gone")
    fake.delete("Lead", gone)
    body = {
        "allOrNone": True,
        "records": [{"attributes": {"type": "Lead"}, "id": i, "Title": "CEO"} for i in (good, gone)],
    }

    results = client.restful("composite/sobjects", method="PATCH", json=body)

    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert fake.get("Lead", good)["Title"] is None


def test_given_a_queue_when_made_owner_of_a_contact_then_the_fake_refuses_it_as_salesforce_does(
    org: tuple[FakeSalesforce, Salesforce],
) -> None:
    fake, client = org
    queue = fake.add_queue("Nurture")
    lead, contact = fake.create("Lead", LastName="l"), fake.create("Contact", LastName="c")
    records = [
        {"attributes": {"type": t}, "id": i, "OwnerId": queue} for t, i in (("Lead", lead), ("Contact", contact))
    ]

    results = client.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records})

    assert [r["success"] for r in results] == [True, False]  # queues own Leads and Cases only
    assert results[1]["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert results[1]["errors"][0]["fields"] == ["OwnerId"]


@pytest.fixture
def portal() -> Iterator[tuple[FakeHubSpot, HubSpot]]:
    with FakeHubSpot(search_total_cap=10) as fake:
        yield fake, HubSpot(access_token="pat-sandbox-token", host=fake.url)  # type: ignore[misc]


def test_given_search_limits_when_exceeded_then_hubspot_answers_400(portal: tuple[FakeHubSpot, HubSpot]) -> None:
    fake, client = portal
    for i in range(15):
        fake.create("contacts", email=f"c{i}@x.com")
    search = client.crm.contacts.search_api
    for body in (
        {"limit": 201},
        {"limit": 5, "after": "10"},  # past the (scaled-down) results cap
        {"limit": 5, "sorts": ["email", "createdate"]},
        {"limit": 5, "filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]},
    ):
        with pytest.raises(ApiException) as caught:
            search.do_search(public_object_search_request=body)
        assert caught.value.status == 400, body
    page = search.do_search(public_object_search_request={"limit": 5, "after": "5"})
    assert page.total == 15 and len(page.results) == 5 and page.paging is None  # the cap ends paging


def test_given_more_than_100_inputs_when_batch_updating_then_hubspot_answers_400(
    portal: tuple[FakeHubSpot, HubSpot],
) -> None:
    fake, client = portal
    contact = fake.create("contacts", email="a@x.com")
    inputs = [{"id": contact, "properties": {"jobtitle": "CEO"}}] * 101
    with pytest.raises(ApiException) as caught:
        client.crm.contacts.batch_api.update(batch_input_simple_public_object_batch_input={"inputs": inputs})
    assert caught.value.status == 400
