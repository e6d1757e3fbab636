"""Property-based API testing of postroom with Mailpit's own swagger file (schemathesis).

Every operation of Mailpit's swagger (``tests/vectors/mailpit/api-shape.json``, its facts
without the prose, made by ``scripts/mailpit_api_shape.py``) is called with requests generated from its
parameters and body schema, with a fixed seed (hypothesis ``derandomize``): postroom
must never answer 5xx, and an answer with a status code the swagger documents must match
its schema. A store with messages (attachments, tags, HTML) gives the generated requests
something to find; ``latest`` is one of the IDs they may use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import IN_CI, RunningServer, running_server
from tests.integration._api_client import Api

schemathesis = pytest.importorskip("schemathesis") if not IN_CI else __import__("schemathesis")
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402

SPEC = Path(__file__).resolve().parents[1] / "vectors" / "mailpit" / "api-shape.json"
# Examples per operation: enough to cover each parameter's shapes, small enough for CI.
EXAMPLES = 25

schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()))


@pytest.fixture(scope="module")
def seeded() -> Iterator[RunningServer]:
    with running_server(enable_chaos=True) as s:
        api = Api(s)
        for i in range(3):
            api.send(
                To=[{"Email": f"u{i}@example.org", "Name": "U"}],
                Cc=[{"Email": "cc@example.org"}],
                Subject=f"seed {i}",
                Text="hello\nworld",
                HTML='<p>hello <a href="http://127.0.0.1:9/">x</a><img src="cid:pic"></p>',
                Tags=["seed"],
                Attachments=[
                    {"Content": "aGVsbG8=", "Filename": "a.txt"},
                    {"Content": "aGVsbG8=", "Filename": "pic.png", "ContentID": "pic"},
                ],
            )
        api.wait_indexed()
        yield s


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_mailpit_swagger_conformance(case: Any, seeded: RunningServer) -> None:
    # a non-browser client: the cross-site guard (docs/security.md) lets it change state
    response = case.call(base_url=seeded.http_url, headers={"X-Postroom-Request": "1"}, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
