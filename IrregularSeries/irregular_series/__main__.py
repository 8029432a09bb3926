"""The ``irregular-series`` command (also ``python -m irregular_series``): the process-wide
settings a command may make, and a library imported into someone else's process may not, then
``cli.main``."""

from __future__ import annotations

import os
import sys

# Read by numpy and its BLAS when numpy is imported, so set before that; a user's own value is kept.
PROCESS_SETTINGS: dict[str, str] = {
    # numpy asks the kernel to back every array over 4 MB with huge pages. Where memory was just
    # freed by other processes (a pipeline, the other tools of a benchmark) or goes back to a
    # VM's host, getting those pages costs more system time than they save: 0.1-0.3 s of the
    # 0.7 s convert of 300 slices of 512 x 512 in benchmarks/ (README), nothing on an idle machine.
    "NUMPY_MADVISE_HUGEPAGE": "0",
    # OpenBLAS (numpy's wheels bundle it) starts one spinning thread per core when it loads. The
    # command's linear algebra is on 3 x 3 and N x 3 matrices, where those threads do nothing but
    # cost 0.06-0.15 s of CPU per run, taken from the writing and checking threads.
    "OPENBLAS_NUM_THREADS": "1",
}


def main() -> int:
    for name, value in PROCESS_SETTINGS.items():
        os.environ.setdefault(name, value)
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
