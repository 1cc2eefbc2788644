"""Retrieval metrics over packed codes (Hamming ranking) and labels."""

from .metrics import average_precisions, mean_average_precision, precision_within_radius

__all__ = ["average_precisions", "mean_average_precision", "precision_within_radius"]
