"""The ``irregular-series`` command (also ``python -m irregular_series``): the process-wide
settings a command may make, and a library imported into someone else's process may not, then
``cli.main``."""

from __future__ import annotations

import os
import sys


def main() -> int:
    # numpy asks the kernel to back every array over 4 MB with huge pages. Where memory was just
    # freed by other processes (a pipeline, the other tools of a benchmark) or goes back to a
    # VM's host, getting those pages costs more system time than they save: 0.1-0.3 s of the
    # 0.7 s convert of 300 slices of 512 x 512 in benchmarks/ (README), nothing on an idle
    # machine. Set before numpy is imported, as numpy reads it then; a user's own setting is kept.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
