"""The API does what its OpenAPI schema says (issue 23, item 7): the error responses each
operation gives are documented, pagination and filter parameters are checked as documented,
fields take the JSON type the schema gives, and a never-saved setting's ``updated`` is null
where the schema allows it."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.apps.bots.factories import api, make_account, make_bot, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(clean_redis):
    user = make_user("alice")
    make_bot(user, account=make_account(user))
    return api(user)


@pytest.fixture(scope="module")
def document():
    return SchemaGenerator().get_schema(request=None, public=True)


def _errors(response) -> str:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    return str(response.json())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("offset=null&offset=null", "given 2 times"),
        ("limit=69245188729149891761143808", "from 1 to 1000"),
        ("limit=0", "from 1 to 1000"),
        ("limit=5.0", "from 1 to 1000"),
        ("offset=-1", "from 0 to 9223372036854775807"),
        ("limit=%EF%BC%91", "from 1 to 1000"),  # a full-width digit: int() would take it
        ("active=null&active=null", "give it once"),
        ("active=abc", "true or false"),
        ("ordering=nope", "venue, symbol, id"),
        ("ordering=-id&ordering=id", "give it once"),
    ],
)
def test_bad_list_parameters_get_400_naming_the_parameter_and_what_is_accepted(alice, query, expected):
    errors = _errors(alice.get(f"/api/v1/markets/?{query}"))
    assert query.split("=")[0] in errors and expected in errors, errors


def test_good_and_empty_list_parameters_are_accepted(alice):
    assert alice.get("/api/v1/markets/?limit=1000&offset=0&ordering=-id,venue&active=true").status_code == 200
    page = alice.get("/api/v1/markets/?limit=&offset=&active=&ordering=").json()  # empty = not given
    assert page["count"] >= 1 and len(page["results"]) == page["count"]
    # An unknown (or someone else's) account id matches nothing, like any other filter value.
    assert alice.get("/api/v1/balances/?account=987654").json()["count"] == 0
    assert "account" in _errors(alice.get("/api/v1/balances/?account=0"))  # ids start at 1


def test_fields_take_the_json_type_the_schema_documents(alice):
    url = "/api/v1/arbitrage/settings/"
    assert "venues" in _errors(alice.patch(url, {"venues": [0]}, format="json"))
    assert "paper_execute" in _errors(alice.patch(url, {"paper_execute": 0}, format="json"))
    assert alice.patch(url, {"venues": ["binance"], "paper_execute": False}, format="json").status_code == 200
    # The API takes JSON bodies: a form is refused with 415 rather than half-read.
    assert alice.patch(url, {"paper_execute": "false"}).status_code == 415


def test_unsaved_arbitrage_settings_have_a_null_updated_time_and_the_schema_says_so(alice, document):
    assert alice.get("/api/v1/arbitrage/settings/").json()["updated"] is None
    updated = document["components"]["schemas"]["ArbitrageSettings"]["properties"]["updated"]
    assert updated.get("nullable") is True


def test_every_operation_documents_the_errors_it_gives(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            where = f"{method.upper()} {path}"
            if path != "/api/v1/auth/token/":
                assert {"401", "403", "429"} <= codes, where
            if "{" in path:
                assert "404" in codes, where
            if method in ("post", "put", "patch") or any(p["in"] == "query" for p in operation.get("parameters", ())):
                assert "400" in codes, where
    token = document["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert {"200", "400", "429"} <= set(token) and "401" not in token
    assert document["components"]["schemas"]["Error"]["properties"]["detail"] == {"type": "string"}
