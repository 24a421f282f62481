from __future__ import annotations

import pytest

from edi.core.catalog import SchemaCatalog
from edi.core.validation import Validator
from tests.shared_samples import STANDARDS


@pytest.fixture(scope="session")
def published_catalog() -> SchemaCatalog:
    return SchemaCatalog([STANDARDS])


@pytest.fixture(scope="session")
def validator(published_catalog: SchemaCatalog) -> Validator:
    return Validator(published_catalog)


@pytest.fixture(scope="session")
def builtin_validator() -> Validator:
    return Validator(SchemaCatalog())
