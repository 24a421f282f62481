"""The operator tools' tests run on the installations of the services' tests (embedded bus and real Kafka)."""

from tests.services.conftest import bus_kind, installation, pytest_configure

__all__ = ["bus_kind", "installation", "pytest_configure"]
