"""`edi dev token`: a development gateway with the same data directory accepts the token, also as Bearer."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from edi.auth.dpop import generate_key, make_proof, thumbprint
from edi.cli.main import app as edi
from edi.services.gateway.app import create_app
from tests.gateway.conftest import API_HEADERS, dev_settings
from tests.gateway.memory import InMemoryMessaging


def edi_dev_token(*args: str) -> str:
    result = CliRunner().invoke(edi, ["dev", "token", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


async def test_the_token_works_as_bearer_and_bound_as_dpop(tmp_path: Path, messaging: InMemoryMessaging) -> None:
    app = create_app(messaging, dev_settings(tmp_path))
    bearer = edi_dev_token("--her-id", "222", "--her-id", "333", "--data-dir", str(tmp_path))
    key = generate_key()
    bound = edi_dev_token("--her-id", "222", "--jkt", thumbprint(key), "--data-dir", str(tmp_path))
    url = "http://g/Messages?ReceiverHerIds=222&ReceiverHerIds=333"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), headers=API_HEADERS) as http:
        assert (await http.get(url, headers={"Authorization": f"Bearer {bearer}"})).status_code == 200
        proof = make_proof(key, "GET", url, access_token=bound)
        dpop = await http.get(url.split("&")[0], headers={"Authorization": f"DPoP {bound}", "DPoP": proof})
        assert dpop.status_code == 200, dpop.text
        assert (await http.get(url, headers={"Authorization": f"Bearer {bound}"})).status_code == 401


def test_usage_errors(tmp_path: Path) -> None:
    for args in (["--her-id", "0"], ["--her-id", "0", "--her-id", "5", "--org", "999888777"], ["--her-id", "-4"],
                 ["--her-id", "5", "--hours", "0"]):
        result = CliRunner().invoke(edi, ["dev", "token", *args, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2, (args, result.output)
    assert edi_dev_token("--her-id", "0", "--org", "999888777", "--data-dir", str(tmp_path)).count(".") == 2
