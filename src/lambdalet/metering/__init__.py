"""Metering: billed duration, REPORT lines and the batched writer of usage records."""
