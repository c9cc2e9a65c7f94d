"""Allow ``python -m lambdalet``."""

from __future__ import annotations

from lambdalet.cli.main import main

main()
