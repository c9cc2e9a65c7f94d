"""The ``lambdalet`` command."""
