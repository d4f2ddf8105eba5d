"""Moved into the evaluation package, the one home of metrics: the numbers to :mod:`mmadfer.evaluation.accuracy`,
the files to :mod:`mmadfer.evaluation.files`, the chart to :mod:`mmadfer.evaluation.plots`. This module keeps the
old import path."""
from .evaluation.accuracy import classification_metrics, confusion_frames, load_cost_matrix
from .evaluation.files import write_evaluation, write_json
from .evaluation.plots import plot_confusion

__all__ = ["classification_metrics", "load_cost_matrix", "write_evaluation", "plot_confusion", "write_json",
           "confusion_frames"]
