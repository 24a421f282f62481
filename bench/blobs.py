"""A large object up and down through the object API, and what it costs the server in memory.

The object API runs under uvicorn in a subprocess on 127.0.0.1 (directory blob store by default; `--s3` puts it
on a moto S3 server in another subprocess). This process uploads a generated file (1 GB by default) as the
DEFT-style multipart/form-data POST, streaming it from disk, then downloads it and checks its sha256. The server
process's peak resident memory (VmHWM in /proc/<pid>/status) is read after a warm-up request and again at the
end: the growth is what moving the object cost. A plain file copy of the same file in the same run is the
baseline (`copy_mb_per_s`). Temporary files are removed at the end.

Run: `uv run python bench/blobs.py [--size-mb 1024] [--s3]`. Ends with one JSON line:
{"upload_mb_per_s", "download_mb_per_s", "copy_mb_per_s", "peak_rss_growth_mb"}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SENDER, RECEIVER = "8093", "8142"
CHUNK = 1024 * 1024
MB = 1024 * 1024
BOUNDARY = "edi-bench-boundary"
READY_TIMEOUT_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--s3", action="store_true", help="S3 blob store on a moto server instead of a directory")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    with tempfile.TemporaryDirectory(prefix="edi-bench-blobs-") as scratch:
        run(Path(scratch), args.size_mb * MB, args.s3)


def run(scratch: Path, size: int, s3: bool) -> None:
    source = scratch / "source.bin"
    expected = write_source(source, size)
    started = time.perf_counter()
    shutil.copyfile(source, scratch / "copy.bin")
    copy_s = time.perf_counter() - started
    (scratch / "copy.bin").unlink()

    env = {**os.environ, "EDI_DATA_DIR": str(scratch / "data"), "EDI_PUBLIC_URL": "http://127.0.0.1"}
    with s3_server(env) if s3 else nothing(), server(env) as (port, pid):
        base = f"http://127.0.0.1:{port}"
        before = vm_hwm_kb(pid)
        upload_s, url = asyncio.run(upload(base, source, size))
        download_s, digest = asyncio.run(download(url, size))
        growth_mb = (vm_hwm_kb(pid) - before) / 1024
    if digest != expected:
        sys.exit(f"the downloaded bytes differ: sha256 {digest}, uploaded {expected}")

    figures = {
        "upload_mb_per_s": round(size / MB / upload_s, 1),
        "download_mb_per_s": round(size / MB / download_s, 1),
        "copy_mb_per_s": round(size / MB / copy_s, 1),
        "peak_rss_growth_mb": round(growth_mb, 1),
    }
    store = "S3 (moto)" if s3 else "directory"
    print(f"{size // MB} MB through the object API on the {store} store, sha256 checked")
    print(f"upload    {figures['upload_mb_per_s']:8.1f} MB/s  ({upload_s:.1f} s)")
    print(f"download  {figures['download_mb_per_s']:8.1f} MB/s  ({download_s:.1f} s)")
    print(f"file copy {figures['copy_mb_per_s']:8.1f} MB/s  ({copy_s:.1f} s, baseline)")
    print(f"server peak RSS growth {figures['peak_rss_growth_mb']:.1f} MB")
    print(json.dumps(figures))


def write_source(path: Path, size: int) -> str:
    """Incompressible bytes (a repeated random block would do for the disk, but not for honesty)."""
    hasher = hashlib.sha256()
    with path.open("wb") as file:
        for offset in range(0, size, CHUNK):
            block = os.urandom(min(CHUNK, size - offset))
            hasher.update(block)
            file.write(block)
    return hasher.hexdigest()


async def upload(base: str, source: Path, size: int) -> tuple[float, str]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"SenderHerId\"\r\n\r\n{SENDER}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ReceiverHerIds\"\r\n\r\n{RECEIVER}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"scan.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        with source.open("rb") as file:
            while block := await asyncio.to_thread(file.read, CHUNK):
                yield block
        yield tail

    async with httpx.AsyncClient(timeout=None) as client:
        started = time.perf_counter()
        response = await client.post(f"{base}/objects", content=body(), headers={
            "X-Her-Ids": SENDER, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            # A length, as a client sending a file gives it: without one httpx sends the body chunked.
            "Content-Length": str(len(head) + size + len(tail))})
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    if response.json()["size"] != size:
        sys.exit(f"the server stored {response.json()['size']} bytes of {size}")
    return elapsed, f"{base}/objects/{response.json()['key']}"


async def download(url: str, size: int) -> tuple[float, str]:
    hasher = hashlib.sha256()
    received = 0
    async with httpx.AsyncClient(timeout=None) as client:
        started = time.perf_counter()
        async with client.stream("GET", url, headers={"X-Her-Ids": RECEIVER}) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw(CHUNK):
                hasher.update(chunk)
                received += len(chunk)
        elapsed = time.perf_counter() - started
    if received != size:
        sys.exit(f"downloaded {received} bytes of {size}")
    return elapsed, hasher.hexdigest()


# --- the server side ---------------------------------------------------------------------------------------------


async def serve(port: int) -> None:
    import uvicorn
    from fastapi import Header

    from edi.adapters.blobs import BlobSettings, S3BlobStore
    from edi.services.objects.api import create_objects_app
    from edi.services.objects.settings import ObjectSettings

    def caller(x_her_ids: str = Header(default="")) -> frozenset[str]:  # the benchmark's stand-in for auth
        return frozenset(x_her_ids.split(","))

    blobs = await BlobSettings().open_blob_store()
    if isinstance(blobs, S3BlobStore):
        await blobs.create_bucket()
    app = create_objects_app(await ObjectSettings().open_service(blobs), caller)
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()


@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/objects/{'0' * 32}/download-status", process)  # also the warm-up
        yield port, process.pid
    finally:
        stop(process)


@contextmanager
def s3_server(env: dict[str, str]) -> Iterator[None]:
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    env.update({"EDI_BLOB_STORE": "s3", "EDI_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "EDI_S3_ADDRESSING_STYLE": "path", "EDI_S3_BUCKET": "edi-bench", "EDI_S3_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    try:
        wait_ready(f"http://127.0.0.1:{port}/", process)
        yield
    finally:
        stop(process)


@contextmanager
def nothing() -> Iterator[None]:
    yield


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode}")
        try:
            httpx.get(url, headers={"X-Her-Ids": SENDER}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"the server did not answer at {url} within {READY_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc: this benchmark needs Linux")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
