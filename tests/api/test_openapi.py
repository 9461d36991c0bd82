"""The OpenAPI document: readable unique operation ids, every error response documented."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from caretaker.settings import Settings
from stack.app import api as create_app

ERRORS = {"400", "401", "403", "404", "409", "413", "422", "503"}


def _spec() -> dict[str, Any]:
    # No database needed: the document is built from the routes alone.
    return create_app(Settings(database_url="postgresql://unused/unused")).openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


def test_operation_ids_are_the_route_function_names() -> None:
    ops = _operations(_spec())
    ids = [op["operationId"] for _, _, op in ops]
    assert len(ids) == len(set(ids))
    assert all("api_v1" not in i and i.isidentifier() for i in ids), ids
    by_path = {(path, method): op["operationId"] for path, method, op in ops}
    assert by_path[("/api/v1/alarms/{alarm_id}/acknowledge", "post")] == "acknowledge_alarm"
    assert by_path[("/api/v1/work-orders/{wo_id}/close", "post")] == "close_work_order"


def test_every_operation_documents_its_errors_with_the_one_shape() -> None:
    spec = _spec()
    for path, method, op in _operations(spec):
        assert ERRORS <= set(op["responses"]), (path, method, sorted(op["responses"]))
        for status in ERRORS:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    info = spec["components"]["schemas"]["ErrorInfo"]
    assert set(info["properties"]) == {"status", "code", "message", "details"}


def test_work_order_transitions_carry_examples() -> None:
    schemas = _spec()["components"]["schemas"]
    # FastAPI qualifies names by module when two schemas share one ("api__routes__...").
    assert not [n for n in schemas if n.startswith(("api__", "rules__", "tickets__"))]
    for name in ("WorkOrderStep", "WorkOrderClose", "WorkOrderAssign"):
        assert schemas[name]["examples"], name


def test_the_document_is_served(client: TestClient) -> None:
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "Caretaker"
