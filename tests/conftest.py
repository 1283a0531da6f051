"""Shared fixtures: the repository root, the Adult example and the small test data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import paths


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of the repository (holds pyproject.toml, dpsynth/, examples/, audits/)."""
    return paths.REPO_ROOT


@pytest.fixture(scope="session")
def adult_csv() -> Path:
    """The full Adult example table, ``examples/adult/adult.csv``."""
    return paths.ADULT_CSV


@pytest.fixture(scope="session")
def adult_schema_path() -> Path:
    """The public schema of the Adult example, ``examples/adult/schema.yaml``."""
    return paths.ADULT_SCHEMA


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """The folder of data files copied for the tests, ``tests/data``."""
    return paths.TEST_DATA


@pytest.fixture(scope="session")
def adult_sample_csv() -> Path:
    """A small sample of Adult rows, ``tests/data/adult_sample.csv``."""
    return paths.ADULT_SAMPLE
