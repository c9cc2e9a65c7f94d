"""The script lambdalet's Python runtime is started with: it imports ``python_bootstrap.py``.

A script is compiled at every start, an imported module is not (its bytecode is cached beside
it, in ``__pycache__``): compiling the runtime client costs about 8 ms of CPU, on the path of
every cold start that starts an interpreter. Standard library only, like the runtime itself.
"""

from __future__ import annotations

import python_bootstrap  # type: ignore[import-not-found]  # beside this script

python_bootstrap.main()
