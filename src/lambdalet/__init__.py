"""lambdalet: a self-hosted, AWS-Lambda-compatible serverless platform."""

from __future__ import annotations

__version__ = "0.1.0"
