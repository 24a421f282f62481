"""The DEFT-style object API as a client sees it: upload, fetch, confirm, delete, in parts; who may do what."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from edi.adapters.blobs import MIN_PART_SIZE, BlobNotFound, DirectoryBlobStore
from edi.services.objects.api import create_objects_app
from edi.services.objects.service import ObjectService
from tests.objects.conftest import (
    COPY,
    PUBLIC_URL,
    RECEIVER,
    SENDER,
    STRANGER,
    OpenService,
    as_,
    form,
    header_her_ids,
)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def upload(client: httpx.AsyncClient, content: bytes, receivers: list[str] | None = None) -> dict[str, Any]:
    response = await client.post("/objects", headers=as_(SENDER),
                                 **form(SENDER, receivers or [RECEIVER, COPY], content))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_upload_gives_a_url_for_file_reference_and_receivers_fetch_the_same_bytes(
    client: httpx.AsyncClient,
) -> None:
    content = os.urandom(300_000)
    response = await client.post("/objects", headers=as_(SENDER),
                                 **form(SENDER, [RECEIVER, COPY], content))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"{PUBLIC_URL}/objects/{body['key']}" == response.headers["location"]
    assert (body["size"], body["sha256"], body["contentType"], body["fileName"], body["state"]) == (
        len(content), sha256(content), "application/pdf", "scan.pdf", "stored")
    assert body["senderHerId"] == SENDER
    assert [(r["herId"], r["downloadConfirmed"]) for r in body["receivers"]] == [(RECEIVER, False), (COPY, False)]

    for who in (RECEIVER, COPY, SENDER):
        fetched = await client.get(body["url"], headers=as_(who))
        assert fetched.status_code == 200
        assert fetched.content == content
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-length"] == str(len(content))
    assert fetched.headers["etag"] == f'"{sha256(content)}"'
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert fetched.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert "scan.pdf" in fetched.headers["content-disposition"]


async def test_only_the_sender_and_its_receivers_may_touch_an_object(client: httpx.AsyncClient) -> None:
    body = await upload(client, b"%PDF-1.7 small")
    url = body["url"]
    for method, path in [("GET", ""), ("GET", "/download-status"), ("DELETE", ""),
                         ("PUT", f"/download-receipt/{STRANGER}")]:
        response = await client.request(method, url + path, headers=as_(STRANGER))
        assert response.status_code == 403, (method, path)
    # Receivers may read and confirm for themselves, not delete, nor confirm for another receiver.
    assert (await client.delete(url, headers=as_(RECEIVER))).status_code == 403
    assert (await client.put(f"{url}/download-receipt/{COPY}", headers=as_(RECEIVER))).status_code == 403
    assert (await client.put(f"{url}/download-receipt/{SENDER}", headers=as_(SENDER))).status_code == 403
    # A caller uploads only as a sender it holds.
    response = await client.post("/objects", headers=as_(STRANGER),
                                 **form(SENDER, [RECEIVER], b"x"))
    assert response.status_code == 403
    assert (await client.get(url, headers=as_(RECEIVER))).status_code == 200


async def test_malformed_uploads_are_refused(client: httpx.AsyncClient) -> None:
    async def post(content_type: str | None = None, **arguments: Any) -> httpx.Response:
        headers = {**as_(SENDER), **({"content-type": content_type} if content_type else {})}
        return await client.post("/objects", headers=headers, **arguments)

    assert (await post(**form(SENDER, [], b"x"))).status_code == 400  # no receiver
    assert (await post(**form(SENDER, ["not-a-her-id"], b"x"))).status_code == 400
    assert (await post(data={"SenderHerId": SENDER, "ReceiverHerIds": [RECEIVER]})).status_code == 400  # no file
    assert (await post(content=b"plain body", content_type="text/plain")).status_code == 400
    # The fields must come before the file: the upload is authorised before a byte is stored.
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"a.pdf\"\r\n"
            f"Content-Type: application/pdf\r\n\r\n%PDF\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"SenderHerId\"\r\n\r\n{SENDER}\r\n"
            f"--{boundary}--\r\n").encode()
    response = await post(content=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    assert "before the file" in response.json()["detail"]


async def test_an_object_over_the_size_limit_is_refused_and_not_kept(
    open_service: OpenService, database_url: str,
) -> None:
    service = await open_service(database_url, max_bytes=1000)
    app = create_objects_app(service, header_her_ids)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as http:
        response = await http.post("/objects", headers=as_(SENDER),
                                   **form(SENDER, [RECEIVER], os.urandom(1001)))
        assert response.status_code == 413
    assert [key async for key in service.blobs.list_older_than(datetime.now(UTC) + timedelta(days=1))] == []


async def test_confirmations_by_every_receiver_delete_the_object(
    client: httpx.AsyncClient, service: ObjectService,
) -> None:
    body = await upload(client, b"attachment bytes")
    url, key = body["url"], body["key"]
    first = await client.put(f"{url}/download-receipt/{RECEIVER}", headers=as_(RECEIVER))
    assert first.status_code == 200
    assert first.json()["state"] == "stored"
    assert [r["downloadConfirmed"] for r in first.json()["receivers"]] == [True, False]
    again = await client.put(f"{url}/download-receipt/{RECEIVER}", headers=as_(RECEIVER))  # idempotent
    assert again.status_code == 200

    last = await client.put(f"{url}/download-receipt/{COPY}", headers=as_(COPY, "1234"))
    assert last.status_code == 200
    assert (last.json()["state"], last.json()["deletedReason"]) == ("deleted", "confirmed")
    with pytest.raises(BlobNotFound):
        await service.blobs.head(key)
    gone = await client.get(url, headers=as_(RECEIVER))
    assert gone.status_code == 410
    assert "every receiver has confirmed" in gone.json()["detail"]
    status = await client.get(f"{url}/download-status", headers=as_(SENDER))
    assert status.status_code == 200
    assert [r["downloadConfirmed"] for r in status.json()["receivers"]] == [True, True]


async def test_the_sender_deletes(client: httpx.AsyncClient) -> None:
    url = (await upload(client, b"oops, wrong patient"))["url"]
    assert (await client.delete(url, headers=as_(SENDER))).status_code == 204
    assert (await client.get(url, headers=as_(RECEIVER))).status_code == 410
    assert (await client.delete(url, headers=as_(SENDER))).status_code == 204  # again: still gone
    assert (await client.get(f"{PUBLIC_URL}/objects/{'0' * 32}", headers=as_(SENDER))).status_code == 404


async def test_upload_in_parts(client: httpx.AsyncClient) -> None:
    started = await client.post("/objects/initialization", headers=as_(SENDER), json={
        "senderHerId": SENDER, "receiverHerIds": [RECEIVER], "contentType": "image/tiff", "fileName": "xray.tiff"})
    assert started.status_code == 201, started.text
    url = started.json()["url"]
    assert (started.json()["state"], started.json()["size"]) == ("uploading", None)
    assert (await client.get(url, headers=as_(RECEIVER))).status_code == 409

    first, second = os.urandom(MIN_PART_SIZE), os.urandom(1234)
    tags = {}
    for number, content in ((2, second), (1, first)):
        assert (await client.post(f"{url}/part", params={"partNumber": number}, content=content,
                                  headers=as_(RECEIVER))).status_code == 403
        part = await client.post(f"{url}/part", params={"partNumber": number}, content=content, headers=as_(SENDER))
        assert part.status_code == 200, part.text
        assert part.headers["etag"] == part.json()["eTag"]
        tags[number] = part.json()["eTag"]
    done = await client.post(f"{url}/completion", headers=as_(SENDER), json={
        "parts": [{"partNumber": n, "eTag": tag} for n, tag in sorted(tags.items())]})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["size"], done.json()["sha256"]) == (
        "stored", len(first + second), sha256(first + second))
    fetched = await client.get(url, headers=as_(RECEIVER))
    assert fetched.content == first + second
    assert fetched.headers["content-type"] == "image/tiff"
    late = await client.post(f"{url}/part", params={"partNumber": 3}, content=b"x", headers=as_(SENDER))
    assert late.status_code == 409


async def test_a_cancelled_upload_takes_no_more_parts(client: httpx.AsyncClient) -> None:
    started = await client.post("/objects/initialization", headers=as_(SENDER), json={
        "senderHerId": SENDER, "receiverHerIds": [RECEIVER]})
    url = started.json()["url"]
    tag = (await client.post(f"{url}/part", params={"partNumber": 1}, content=b"abc", headers=as_(SENDER))).json()
    assert (await client.post(f"{url}/cancellation", headers=as_(RECEIVER))).status_code == 403
    assert (await client.post(f"{url}/cancellation", headers=as_(SENDER))).status_code == 204
    assert (await client.post(f"{url}/part", params={"partNumber": 2}, content=b"x",
                              headers=as_(SENDER))).status_code == 410
    completion = await client.post(f"{url}/completion", headers=as_(SENDER), json={"parts": [tag]})
    assert completion.status_code == 410
    status = await client.get(f"{url}/download-status", headers=as_(RECEIVER))
    assert (status.json()["state"], status.json()["deletedReason"]) == ("deleted", "cancelled")


async def test_a_tampered_object_is_refused_with_a_clear_error(
    client: httpx.AsyncClient, service: ObjectService,
) -> None:
    body = await upload(client, b"the original scan")
    assert isinstance(service.blobs, DirectoryBlobStore)
    (service.blobs.root / "objects" / body["key"] / "data").write_bytes(b"the tampered scan")
    response = await client.get(body["url"], headers=as_(RECEIVER))
    assert response.status_code == 500
    assert "sha256" in response.json()["detail"] and body["key"] in response.json()["detail"]

