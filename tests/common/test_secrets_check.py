"""Short secrets: LiveKit's dev default stays quiet, anything else short is said once."""

from __future__ import annotations

import logging

import pytest

from services.common import secrets_check


def test_dev_default_and_long_secrets_are_quiet_a_short_one_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="services.common.secrets_check")
    secrets_check.check_secret("TEST_DEV_SECRET", secrets_check.DEV_SECRET)
    secrets_check.check_secret("TEST_LONG_SECRET", "x" * 32)
    assert caplog.records == []

    secrets_check.check_secret("TEST_SHORT_SECRET", "hunter2")
    secrets_check.check_secret("TEST_SHORT_SECRET", "hunter2")
    (said,) = caplog.records
    assert "TEST_SHORT_SECRET is 7 bytes" in said.getMessage() and "hunter2" not in said.getMessage()
