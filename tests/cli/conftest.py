"""Fixtures of the CLI's tests."""

from __future__ import annotations

import pytest

from tests.cli.running import environment
from tests.conftest import OPERATOR_KEY


@pytest.fixture
def env(system, tenant_id) -> dict[str, str]:
    """The CLI's settings for this test's tenant on the running services, with the operator's key."""
    return environment(write_url=system["ingest"].url, read_url=system["scoring"].url, api_key=OPERATOR_KEY,
                       tenant=tenant_id)
