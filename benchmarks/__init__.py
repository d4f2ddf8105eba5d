"""Benchmarks: ``python -m benchmarks.run`` (same as ``mmadfer bench``); ``benchmarks/gpu.sh`` for the lent GPU."""
