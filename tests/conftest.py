"""Shared test set-up: never touch the network; find the real data; build tiny modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before transformers / huggingface_hub are imported by any test module.
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_key] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "src" / "rpt" / "conf"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def real_data_dir() -> Path | None:
    value = os.environ.get("RPT_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def require_real_data_dir() -> Path:
    """The real SuperGLUE folder, or skip the test with the reason."""
    found = real_data_dir()
    if found is None:
        pytest.skip(
            "RPT_DATA_DIR is not set to a SuperGLUE folder (CI sets ../shared/data/superglue)"
        )
    return found


@pytest.fixture
def data_dir() -> Path:
    """The real SuperGLUE folder, or skip with the reason."""
    return require_real_data_dir()


@pytest.fixture(scope="module")
def data_dir_module() -> Path:
    """The real SuperGLUE folder for module-scoped fixtures (one training run per test file)."""
    return require_real_data_dir()


@pytest.fixture
def fixture_data_dir() -> Path:
    """Hand-written examples in the official layout (ReCoRD, BoolQ train, …)."""
    return FIXTURES / "superglue"
