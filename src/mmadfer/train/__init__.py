"""Training and evaluation engine, distributed helpers."""
