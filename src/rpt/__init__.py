"""rpt: Residual Prompt Tuning for frozen language models (Lightning + Hydra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from rpt.inference import Predictor

__all__ = ["__version__", "load"]


def load(export_dir: Any, **kwargs: Any) -> Predictor:
    """Load an export folder for inference: ``rpt.load(dir).predict(records)``.

    See :func:`rpt.inference.load` for the options. Imported on first use, so that ``import rpt``
    stays cheap (no torch, no transformers).
    """
    from rpt.inference import load as _load

    return _load(export_dir, **kwargs)
