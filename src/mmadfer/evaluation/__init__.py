"""Evaluation beyond accuracy: calibration (ECE, MCE, NLL, Brier, temperature scaling), bootstrap intervals,
abstention (risk–coverage, AURC), subgroup gaps, operating cost and the self-contained HTML report.

Pure functions on predictions (numpy in, numbers out), one concept per module; the commands ``evaluate``,
``calibrate`` and ``cv`` wire them to models and datasets."""
from .calibration import ECE_BINS, brier, ece, fit_temperature, mce, nll, probabilities, reliability_bins

__all__ = ["ECE_BINS", "brier", "ece", "fit_temperature", "mce", "nll", "probabilities", "reliability_bins"]
