"""Prompt reparameterizers (P -> P', both `(n, d)`) and prompt initialisation.

Adding a reparameterizer is one `Reparameterizer` subclass and one file in `conf/prompt/`.
"""

from rpt.prompts.base import Reparameterizer
from rpt.prompts.init import STRATEGIES, initial_prompt
from rpt.prompts.lstm import LSTMPrompt
from rpt.prompts.mlp import MLPPrompt, ResidualMLPPrompt
from rpt.prompts.plain import NoPrompt, PlainPrompt

__all__ = [
    "STRATEGIES",
    "LSTMPrompt",
    "MLPPrompt",
    "NoPrompt",
    "PlainPrompt",
    "Reparameterizer",
    "ResidualMLPPrompt",
    "initial_prompt",
]
