"""CommitmentBank: does the premise commit its author to the (embedded) hypothesis?"""

from rpt.data.tasks.base import Task


class CB(Task):
    name = "cb"
    folder = "CB"
    hub_config = "cb"
    num_classes = 3
    metric_names = ("accuracy", "f1_macro")  # score = their mean, as on the leaderboard
    record_fields = {"premise": str, "hypothesis": str}
    default_template = "premise: {premise} hypothesis: {hypothesis}"
    labels = ("entailment", "contradiction", "neutral")  # the order of HF's ClassLabel too
    default_label_words = ("entailment", "contradiction", "neutral")
    submission_labels = labels
