"""A real PostgreSQL server for the test session.

Where the server comes from, first match wins:

1. ``EDI_TEST_POSTGRES_URL`` is set (e.g. ``postgresql://postgres:secret@127.0.0.1:5432/postgres``): that
   existing server is used; the URL must allow ``CREATE DATABASE``.
2. PostgreSQL's server binaries (``initdb``, ``pg_ctl``, ``postgres``) on PATH or under
   ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package): a throwaway cluster is created in
   a temp dir and started on 127.0.0.1 on a free port, fsync off, trust authentication, and removed at the
   end of the session. PostgreSQL refuses to run as root, so as root it runs as ``nobody``.

If neither is available the fixture errors and says how to get a server; it never skips.

Each test that needs isolation asks ``postgres_server.create_database()`` for a fresh, empty database.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

INSTALL_HINT = "apt-get install -y postgresql"
READY_TIMEOUT_S = 60
UNPRIVILEGED_USER = "nobody"

T = TypeVar("T")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server can be had: the message says why and what to install."""


@dataclass
class PostgresServer:
    """A server the tests may create databases on. `admin_url` is a libpq URL of its maintenance database."""

    admin_url: str
    description: str
    _created: list[str] = field(default_factory=list, repr=False)

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy async URL (postgresql+asyncpg://...)."""
        name = f"edi_test_{uuid.uuid4().hex[:12]}"
        _run_async(self._execute(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        return str(make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=name)
                   .render_as_string(hide_password=False))

    def drop_created_databases(self) -> None:
        for name in self._created:
            _run_async(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._created.clear()

    async def _execute(self, statement: str) -> None:
        connection = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def close(self) -> None:
        """Release what the session created (databases on an external server; the whole local cluster)."""
        self.drop_created_databases()


@dataclass
class LocalPostgres(PostgresServer):
    """A cluster this session created with initdb and runs with pg_ctl."""

    bin_dir: Path = Path()
    work_dir: Path = Path()

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "postgres.log"

    def close(self) -> None:
        try:
            _run_as_owner(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w"],
                timeout=READY_TIMEOUT_S,
            )
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def find_server_binaries() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned layout."""
    on_path = [shutil.which(tool) for tool in ("initdb", "pg_ctl", "postgres")]
    if all(on_path):
        return Path(on_path[0] or "").parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return candidate
    raise PostgresUnavailableError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were found neither on PATH nor under "
        f"/usr/lib/postgresql/*/bin. Install them (as root: `{INSTALL_HINT}`) or point EDI_TEST_POSTGRES_URL "
        "at a running server whose user may CREATE DATABASE."
    )


def start_local_postgres() -> LocalPostgres:
    bin_dir = find_server_binaries()
    work_dir = Path(tempfile.mkdtemp(prefix="edi-postgres-"))
    if os.geteuid() == 0:
        # initdb and postgres refuse root; the unprivileged user must own the cluster's directory.
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(work_dir, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    server = LocalPostgres(
        admin_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        description=f"local PostgreSQL from {bin_dir} on 127.0.0.1:{port}",
        bin_dir=bin_dir,
        work_dir=work_dir,
    )
    try:
        _run_as_owner(
            [str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C"],
            timeout=READY_TIMEOUT_S,
        )
        # Unix socket in the work dir (the default /var/run/postgresql may not exist or be writable); TCP only
        # on the loopback interface.
        options = f"-h 127.0.0.1 -p {port} -k {work_dir} -F -c max_connections=200"
        _run_as_owner(
            [str(bin_dir / "pg_ctl"), "start", "-D", str(server.data_dir), "-l", str(server.log_file),
             "-w", "-t", str(READY_TIMEOUT_S), "-o", options],
            timeout=READY_TIMEOUT_S + 10,
        )
    except PostgresUnavailableError as exc:
        log = server.log_file.read_text(errors="replace")[-4000:] if server.log_file.exists() else ""
        shutil.rmtree(work_dir, ignore_errors=True)
        raise PostgresUnavailableError(f"{exc}\n{log}") from None
    return server


def provision_server() -> PostgresServer:
    external = os.environ.get("EDI_TEST_POSTGRES_URL")
    if external:
        url = make_url(external).set(drivername="postgresql")
        server = PostgresServer(admin_url=url.render_as_string(hide_password=False),
                                description=f"PostgreSQL at {url.render_as_string(hide_password=True)}")
        try:
            _run_async(server._execute("SELECT 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            raise PostgresUnavailableError(f"EDI_TEST_POSTGRES_URL is set but unusable: {exc}") from exc
        return server
    return start_local_postgres()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started here unless EDI_TEST_POSTGRES_URL names one)."""
    try:
        server = provision_server()
    except PostgresUnavailableError as exc:
        pytest.fail(f"no PostgreSQL server for the postgres tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.close()


def _run_as_owner(command: list[str], *, timeout: float) -> None:
    """Run a PostgreSQL tool, as `nobody` when we are root (pg refuses root), raising with its output."""
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser:
            command = [runuser, "-u", UNPRIVILEGED_USER, "--", *command]
        else:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise PostgresUnavailableError("running as root and neither runuser nor setpriv is available")
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            command = [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                       *command]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailableError(f"{' '.join(command)}: {exc}") from exc
    if result.returncode != 0:
        raise PostgresUnavailableError(
            f"{' '.join(command)} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    # In a worker thread: the test session's own event loop may be current (or running) in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
