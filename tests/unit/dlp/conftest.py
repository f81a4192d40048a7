"""One detector (one model load) and one engine for the DLP unit tests."""

from __future__ import annotations

import pytest

from dlp.adapters.presidio import PresidioDetector, PresidioRewriter
from dlp.services import DlpEngine


@pytest.fixture(scope="session")
def detector() -> PresidioDetector:
    return PresidioDetector()


@pytest.fixture(scope="session")
def engine(detector: PresidioDetector) -> DlpEngine:
    return DlpEngine(detector, PresidioRewriter(), "test-secret")
