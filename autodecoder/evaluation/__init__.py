"""Evaluation: shape descriptors, overlap metrics, statistics, figures and reports (evaluate.py)."""
