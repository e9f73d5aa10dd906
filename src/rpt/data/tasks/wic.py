"""WiC: is ``word`` used in the same sense in both sentences?"""

from rpt.data.tasks.base import Task


class WiC(Task):
    name = "wic"
    folder = "WiC"
    hub_config = "wic"
    num_classes = 2
    record_fields = {
        "word": str,
        "sentence1": str,
        "sentence2": str,
        "start1": int,
        "end1": int,
        "start2": int,
        "end2": int,
    }
    # The original code lists every field, character offsets included, in this order.
    default_template = (
        "start1: {start1} end1: {end1} sentence1: {sentence1} "
        "start2: {start2} end2: {end2} sentence2: {sentence2} word: {word}"
    )
    labels = (False, True)
    label_type = bool
    default_label_words = ("false", "true")
    submission_labels = ("false", "true")  # as jiant writes WiC.jsonl
