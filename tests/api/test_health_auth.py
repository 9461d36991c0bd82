"""Health needs no token; everything else does."""

from fastapi.testclient import TestClient


def test_health_reports_database_and_broker(client: TestClient) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": True, "broker": True}


def test_openapi_served(client: TestClient) -> None:
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "Caretaker"
