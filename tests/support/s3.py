"""A real S3-compatible server over HTTP for the test session.

Where the server comes from, first match wins:

1. ``EDI_TEST_S3_ENDPOINT`` is set (e.g. ``http://127.0.0.1:9000`` for a MinIO): that server is used, with
   credentials from the usual ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. It cannot be stopped from here,
   so the outage tests (``controllable_s3``) are skipped with that reason.
2. Otherwise moto's S3 server (``moto[server]``) runs in a thread of the test process on 127.0.0.1 and a free
   port. Its state lives in the process, so a second server started on the same port after an outage sees the
   same buckets and objects: the tests can check what an interrupted upload left behind.

Each test that needs isolation asks ``await s3_server.create_bucket()`` for a new, empty bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from edi.adapters.blobs import S3BlobStore

MOTO_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str
    credentials: dict[str, str]
    description: str

    async def open_store(self, bucket: str, **options: Any) -> S3BlobStore:
        """A store on `bucket` that gives up quickly when the server is gone (tests wait for outages)."""
        settings: dict[str, Any] = {"connect_timeout_s": 1.0, "read_timeout_s": 30.0, "max_attempts": 2,
                                    "addressing_style": "path", **self.credentials, **options}
        return await S3BlobStore.open(bucket, endpoint_url=self.endpoint_url, region=REGION, **settings)

    async def create_bucket(self) -> str:
        name = f"edi-test-{uuid.uuid4().hex[:16]}"
        store = await self.open_store(name)
        try:
            await store.create_bucket()
        finally:
            await store.close()
        return name


class ControllableS3(S3Server):
    """The moto server of this session, which a test may stop and start again on the same port."""

    def __init__(self, moto: ThreadedMotoServer) -> None:
        self._moto: ThreadedMotoServer | None = moto
        host, self.port = moto.get_host_and_port()
        super().__init__(f"http://{host}:{self.port}", dict(MOTO_CREDENTIALS), f"moto S3 on {host}:{self.port}")

    def stop(self) -> None:
        """Stop serving and close the listening socket: new connections are refused, as in an outage."""
        if self._moto is None:
            return
        self._moto.stop()
        if self._moto._server is not None:
            self._moto._server.server_close()
        self._moto = None

    def start(self) -> None:
        self._moto = _start_moto(self.port)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3-compatible server (moto, unless EDI_TEST_S3_ENDPOINT names one)."""
    external = os.environ.get("EDI_TEST_S3_ENDPOINT")
    if external:
        yield S3Server(external, {}, f"S3 at {external}")
        return
    server = ControllableS3(_start_moto(port=0))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def controllable_s3(s3_server: S3Server) -> Iterator[ControllableS3]:
    """A moto server of its own on a free port (sharing moto's state), for tests that stop it; skipped against
    an external server, which cannot be stopped from here."""
    if not isinstance(s3_server, ControllableS3):
        pytest.skip("EDI_TEST_S3_ENDPOINT names an external S3 server, which these tests cannot stop")
    server = ControllableS3(_start_moto(port=0))
    try:
        yield server
    finally:
        server.stop()


def _start_moto(port: int) -> ThreadedMotoServer:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    return moto
