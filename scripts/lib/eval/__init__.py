"""Evaluation: the clip_benchmark wrapper run as a subprocess."""
