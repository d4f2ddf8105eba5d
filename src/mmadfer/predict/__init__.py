"""Prediction: a trained model on videos, clips or live sources, as timelines and shareable copies.

:mod:`~mmadfer.predict.recognizer` (:class:`Recognizer`: windows -> faces -> features -> runner -> rows),
:mod:`~mmadfer.predict.tracks` (face tracks and their ids), :mod:`~mmadfer.predict.table` (the timeline table and
its files), :mod:`~mmadfer.predict.timeline` (the chart), :mod:`~mmadfer.predict.anonymize` (pixelated copies) and
:mod:`~mmadfer.predict.realtime` (live sources).
"""
from .recognizer import Recognizer
from .table import table_columns, write_table

__all__ = ["Recognizer", "table_columns", "write_table"]
