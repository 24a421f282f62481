"""A real Apache Kafka broker for the test session.

Where the broker comes from, first match wins:

1. ``EDI_TEST_KAFKA_BOOTSTRAP`` is set: that existing cluster is used as is. It cannot be stopped or started
   from here, so ``stop()``/``start()`` raise ``BrokerControlUnsupportedError`` and tests that need them
   (the ``controllable_kafka_broker`` fixture) are skipped with that reason.
2. A Docker engine answers ``docker info`` and the optional ``testcontainers`` package is importable: a
   testcontainers Kafka container, started once and removed at the end. Its random host port is baked into
   the advertised listener, so it is not controllable either.
3. Otherwise Apache Kafka's own jars, resolved from Maven Central with Maven and cached under
   ``${EDI_TEST_CACHE:-~/.cache/edi-tests}/kafka-<version>/libs``, run as a single KRaft node
   (broker + controller) on the local JDK, on 127.0.0.1 and free random ports. This broker can be stopped
   and started again on the same ports with the same log dir, for fault tests.

If no broker can be had, the fixture errors with the reason; it never skips.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import fcntl
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

# 4.x runs on Java 17 and speaks the protocol versions aiokafka 0.14 uses. Override to try another release.
KAFKA_VERSION = os.environ.get("EDI_TEST_KAFKA_VERSION", "4.3.1")
SCALA_VERSION = "2.13"
# The kafka_2.13 artifact ships slf4j-api and log4j-core but no binding between them; without one the
# broker logs nothing, not even the fatal error that made it exit. Same log4j version Kafka 4.3.1 pulls in.
LOG4J_VERSION = "2.25.4"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
MAVEN_TIMEOUT_S = 900.0
DOCKER_INFO_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 40
JVM_FLAGS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")  # a light broker for tests
# What Kafka's own scripts run a broker with (kafka-server-start.sh's heap, kafka-run-class.sh's collector): for
# the benchmarks, whose latency the serial collector's stop-the-world pauses would otherwise set.
SERVER_JVM_FLAGS = (
    "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
)


class KafkaBrokerError(RuntimeError):
    """No usable broker: the message says why."""


class BrokerControlUnsupportedError(KafkaBrokerError):
    """stop()/start() asked of a broker this session does not own."""


@dataclass
class KafkaBroker:
    """Handle on the session's broker. As is, a cluster someone else runs: it cannot be stopped or started."""

    bootstrap_servers: str
    description: str
    controllable: ClassVar[bool] = False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker; kill=True simulates a crash (SIGKILL) instead of a clean shutdown."""
        raise BrokerControlUnsupportedError(f"stop() is not supported for {self.description}")

    def start(self) -> None:
        """Start the stopped broker again on the same ports with the same data; returns once it serves."""
        raise BrokerControlUnsupportedError(f"start() is not supported for {self.description}")

    async def stop_async(self, *, kill: bool = False) -> None:
        # In a worker thread, so clients on the test's event loop keep running while the broker goes away.
        await asyncio.to_thread(self.stop, kill=kill)

    async def start_async(self) -> None:
        await asyncio.to_thread(self.start)

    def close(self) -> None:
        """Release everything the session created for this broker."""


@dataclass
class ContainerKafka(KafkaBroker):
    container: Any  # testcontainers is optional and untyped

    def close(self) -> None:
        self.container.stop()


@dataclass
class LocalKafka(KafkaBroker):
    """A KRaft broker+controller JVM this session runs from the cached Kafka jars."""

    libs_dir: Path
    work_dir: Path
    port: int
    controller_port: int
    jvm_flags: tuple[str, ...] = JVM_FLAGS
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    controllable: ClassVar[bool] = True

    @property
    def log_file(self) -> Path:
        return self.work_dir / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.work_dir / "server.properties"

    def start(self) -> None:
        if self.process is not None:
            raise KafkaBrokerError(f"{self.description} is already running")
        with self.log_file.open("ab") as log:  # append: keeps the log of earlier runs for diagnosis
            self.process = _spawn(self._java("kafka.Kafka", str(self.config_file)), log)
        self._wait_until_serving()

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()  # SIGTERM: Kafka's own clean shutdown, log flushed
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def format_storage(self) -> None:
        """Write the config files and format the log dir, as `kafka-storage.sh format` does."""
        self.config_file.write_text(self._server_properties())
        (self.work_dir / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
        arguments = ["format", "--config", str(self.config_file), "--cluster-id", _random_cluster_id()]
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", *arguments),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            _require_tool("java"),
            *self.jvm_flags,
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _server_properties(self) -> str:
        # Single node: every internal topic needs replication factor 1. Fewer internal partitions keep
        # startup and the first group join fast; auto topic creation stays at Kafka's default (on).
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.work_dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (stop(kill=True)) the controller refuses the restarted broker until the old
            # registration's session expires: 4 s instead of 9 s keeps crash-restart fault tests quick.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and (code := self.process.poll()) is not None:
                self.process = None
                raise KafkaBrokerError(f"{self.description} exited with code {code}.\n{self._log_tail()}")
            if _port_open(self.port) and _broker_is_serving(self.bootstrap_servers):
                return
            time.sleep(0.5)
        raise KafkaBrokerError(
            f"{self.description} did not serve metadata within {READY_TIMEOUT_S:.0f}s.\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        return f"Last lines of {self.log_file}:\n" + "\n".join(lines[-LOG_TAIL_LINES:])


_LOG4J2_PROPERTIES = """\
status = warn
# Kafka logs from its own shutdown hook; log4j's hook would close the appender first.
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
# INFO here only: the lines saying the server started and stopped, for reading the log after a failure.
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""

_POM_TEMPLATE = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>edi.tests</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    return Path(os.environ.get("EDI_TEST_CACHE") or Path.home() / ".cache" / "edi-tests")


def resolve_kafka_libs() -> Path:
    """The cached folder of Kafka's runtime jars, resolving it with Maven on first use.

    The jars are copied to a scratch folder and renamed into place, so an existing ``libs`` folder is always
    complete. An flock serialises parallel pytest processes: the second one waits and then reuses.
    """
    version_dir = cache_root() / f"kafka-{KAFKA_VERSION}"
    libs = version_dir / "libs"
    if libs.is_dir():
        return libs
    version_dir.mkdir(parents=True, exist_ok=True)
    with (version_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not libs.is_dir():
            _download_kafka_libs(version_dir, libs)
    return libs


def _download_kafka_libs(version_dir: Path, libs: Path) -> None:
    pom = version_dir / "pom.xml"
    pom.write_text(_POM_TEMPLATE.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    partial = version_dir / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        _require_tool("mvn"), "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        message = f"Maven did not resolve Kafka {KAFKA_VERSION} within {exc.timeout:.0f}s"
        raise KafkaBrokerError(message) from exc
    if result.returncode != 0 or not any(partial.glob(f"kafka_{SCALA_VERSION}-*.jar")):
        output = (result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:]
        raise KafkaBrokerError(
            f"Maven could not resolve org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} "
            f"(exit {result.returncode}; command: {' '.join(command)}):\n" + "\n".join(output)
        )
    partial.rename(libs)


def start_local_kafka(jvm_flags: tuple[str, ...] = JVM_FLAGS) -> LocalKafka:
    libs_dir = resolve_kafka_libs()
    port, controller_port = _free_ports(2)  # after the download, so they are still free when Kafka binds
    work_dir = Path(tempfile.mkdtemp(prefix="edi-kafka-"))
    broker = LocalKafka(
        bootstrap_servers=f"127.0.0.1:{port}",
        description=f"a local Kafka {KAFKA_VERSION} broker at 127.0.0.1:{port} (files in {work_dir})",
        libs_dir=libs_dir,
        work_dir=work_dir,
        port=port,
        controller_port=controller_port,
        jvm_flags=jvm_flags,
    )
    try:
        broker.format_storage()
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


def start_container_kafka() -> ContainerKafka | None:
    """A testcontainers Kafka container, or None when Docker or testcontainers is not available."""
    if not _docker_engine_running():
        return None
    try:
        testcontainers_kafka = importlib.import_module("testcontainers.kafka")
    except ImportError:
        return None
    container = testcontainers_kafka.KafkaContainer().start()
    return ContainerKafka(
        bootstrap_servers=container.get_bootstrap_server(),
        description="a testcontainers Kafka container",
        container=container,
    )


def provision_broker(jvm_flags: tuple[str, ...] = JVM_FLAGS) -> KafkaBroker:
    """The broker EDI_TEST_KAFKA_BOOTSTRAP names, else a container, else a local JVM with `jvm_flags`."""
    if bootstrap := os.environ.get("EDI_TEST_KAFKA_BOOTSTRAP"):
        return KafkaBroker(bootstrap, f"an external cluster (EDI_TEST_KAFKA_BOOTSTRAP={bootstrap})")
    return start_container_kafka() or start_local_kafka(jvm_flags)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = provision_broker()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def controllable_kafka_broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The session broker, for tests that stop and start it; skipped (with the reason) when it can't be."""
    if not kafka_broker.controllable:
        pytest.skip(f"needs a broker this session can stop and start, but it uses {kafka_broker.description}")
    return kafka_broker


# Broker JVMs are forked from this one long-lived thread: Linux sends the parent-death signal when the
# forking *thread* ends, and start_async() runs start() on short-lived worker threads.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-spawner")
_PR_SET_PDEATHSIG = 1
# Linux only. Looked up now: a forked child of a threaded process must not dlsym (a loader lock may be held).
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _spawn(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    return _SPAWNER.submit(popen).result()


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest dies without its teardown (killed, crashed), the kernel
    # kills the JVM too instead of leaving a 512 MB broker behind.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaBrokerError(
            f"`{name}` is not on PATH; it is needed to run Kafka locally. Install it (JDK 17+ and Maven), or "
            "point EDI_TEST_KAFKA_BOOTSTRAP at a running cluster."
        )
    return path


def _docker_engine_running() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is picked, so the ports are distinct.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _random_cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding; like Kafka's own Uuid.randomUuid,
    # never one starting with "-", which kafka-storage's argument parser would take for an option.
    while (candidate := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return candidate


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _broker_is_serving(bootstrap_servers: str) -> bool:
    # A private event loop in a worker thread: start() may run while a test's loop is running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _metadata_lists_a_broker(bootstrap_servers)).result()


async def _metadata_lists_a_broker(bootstrap_servers: str) -> bool:
    # KRaft leaves a broker out of metadata until it is unfenced, i.e. ready for produce and consume.
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except KafkaError:
        return False
    finally:
        await client.close()
