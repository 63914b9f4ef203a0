"""Shared infrastructure: config checks, artifact columns, HTTP retry and cache, run console."""
