"""The API serves the built dashboard at / with a strict CSP: hashed assets cached, the app's page for its
routes, never a file outside the build, never in place of an API route; an unbuilt dashboard says how to build."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.registry.migrate import open_database
from tests.integration.api_testkit import api_settings

pytestmark = [pytest.mark.api]


def test_the_build_is_served_with_its_routes_and_a_strict_policy(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>cardiogate</title><div id=root></div>")
    (dist / "assets" / "app-1a2b.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for browsers")
    engine = open_database(f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(api_settings(tmp_path, dashboard_dir=dist), engine, hub=LocalHub())) as client:
        for path in ("/", "/patients/pt-1", "/fleet"):
            page = client.get(path)
            assert page.status_code == 200 and "<div id=root>" in page.text, path
            assert page.headers["cache-control"] == "no-cache"
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        asset = client.get("/assets/app-1a2b.js")
        assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
        assert "not for browsers" not in client.get("/..%2fsecret.txt").text
        assert "not for browsers" not in client.get("/assets/..%2f..%2fsecret.txt").text
        assert client.get("/healthz").json() == {"status": "ok"}  # API routes come first
        assert client.get("/graphql/nothing").status_code == 404  # an API prefix never falls back to the app
        assert client.get("/openapi.json").json()["paths"].get("/{path}") is None
    engine.dispose()


def test_an_unbuilt_dashboard_says_how_to_build_it(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'api.db'}")
    with TestClient(create_app(api_settings(tmp_path, dashboard_dir=tmp_path / "nowhere"), engine,
                               hub=LocalHub())) as client:
        page = client.get("/")
        assert page.status_code == 200 and "npm ci" in page.text and "not built" in page.text
    engine.dispose()
