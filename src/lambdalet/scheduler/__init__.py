"""Scheduling: routing invocations to warm sandboxes, and the async event dispatcher."""
