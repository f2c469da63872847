"""Deterministic cost of a model on an emulated target: instructions per op, flash, RAM, a float32 baseline."""
from .measure import SCHEMA, BenchResult, TargetSpec, bench
from .report import to_text

__all__ = ["SCHEMA", "BenchResult", "TargetSpec", "bench", "to_text"]
