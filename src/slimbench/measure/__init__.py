"""Measuring a model: timing, peak memory, accuracy on datasets and agreement with the reference."""
