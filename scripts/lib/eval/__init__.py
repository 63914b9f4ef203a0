"""Evaluation: benchmark roots prepared from their sources, a model evaluated on a suite with clip_benchmark (the
wrapper run as a subprocess), baseline model tags."""
