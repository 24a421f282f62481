import os

import pytest

pytest_plugins = ["tests.support.kafka", "tests.support.postgres", "tests.support.s3", "tests.support.stores"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the built-in defaults: a deployment's EDI_* settings in the shell that runs the tests
    (a database URL, a broker, an issuer) must neither steer a test nor receive its writes. EDI_TEST_* (the test
    infrastructure to use) stay."""
    for name in list(os.environ):
        if name.startswith("EDI_") and not name.startswith("EDI_TEST_"):
            monkeypatch.delenv(name)
