"""rpt: Residual Prompt Tuning for frozen language models (Lightning + Hydra)."""

__version__ = "0.1.0"
