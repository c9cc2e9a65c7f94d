"""Runtimes: code that runs inside sandboxes, and the Runtime API the host serves them."""
