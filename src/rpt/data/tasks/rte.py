"""RTE: does the premise entail the hypothesis? (two classes)"""

from rpt.data.tasks.base import Task


class RTE(Task):
    name = "rte"
    folder = "RTE"
    hub_config = "rte"
    num_classes = 2
    record_fields = {"premise": str, "hypothesis": str}
    default_template = "premise: {premise} hypothesis: {hypothesis}"
    labels = ("entailment", "not_entailment")
    default_label_words = ("entailment", "not_entailment")
    submission_labels = labels
