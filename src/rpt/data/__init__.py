"""SuperGLUE data: tasks (templates, label words, metrics) and readers of the official files."""

from rpt.data.example import Example
from rpt.data.tasks import TASKS, get_task

__all__ = ["TASKS", "Example", "get_task"]
