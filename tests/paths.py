"""Where the repository, the Adult example and the test data live (one place for every test).

Test modules that need a path at import time (module-level data, parametrisation) import these
names; test functions can use the fixtures of the same paths in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "dpsynth"
ADULT_DIR = REPO_ROOT / "examples" / "adult"
ADULT_CSV = ADULT_DIR / "adult.csv"
ADULT_SCHEMA = ADULT_DIR / "schema.yaml"
TEST_DATA = REPO_ROOT / "tests" / "data"
ADULT_SAMPLE = TEST_DATA / "adult_sample.csv"
AUDIT_POLICIES = REPO_ROOT / "audits" / "policies"
