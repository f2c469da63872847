"""Deterministic cost of a model on an emulated target: instructions per op, flash, RAM, a float32 baseline."""
from .measure import SCHEMA, BenchResult, bench
from .report import to_text

__all__ = ["SCHEMA", "BenchResult", "bench", "to_text"]
