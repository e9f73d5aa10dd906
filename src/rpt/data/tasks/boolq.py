"""BoolQ: a yes/no question about a Wikipedia passage ("<title> -- <text>")."""

from rpt.data.tasks.base import Task


class BoolQ(Task):
    name = "boolq"
    folder = "BoolQ"
    hub_config = "boolq"
    num_classes = 2
    record_fields = {"question": str, "passage": str}
    # The original code's order (its task_to_keys: passage, question). A right-truncated input
    # longer than the model's limit loses the question; ~0.5% of val has > 350 words.
    default_template = "passage: {passage} question: {question}"
    labels = (False, True)
    label_type = bool
    default_label_words = ("false", "true")
    submission_labels = ("false", "true")  # as jiant writes BoolQ.jsonl for the leaderboard
