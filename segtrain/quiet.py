"""TensorFlow without its start-up noise: no C++ or absl lines reach the user unless they ask.

Importing TensorFlow on a CPU machine prints half a dozen lines (oneDNN, CUDA drivers, CPU
instructions, cuInit) that say nothing about the user's work. TF_CPP_MIN_LOG_LEVEL silences
TensorFlow's own logging, but lines logged before absl is initialised go straight to file
descriptor 2, so the import itself is run with fd 2 captured and only lines that are not known
start-up notices are passed on. `--verbose` (or a TF_CPP_MIN_LOG_LEVEL the user set) leaves
everything as TensorFlow does it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"

# Notices TensorFlow prints while it starts, on machines with and without GPUs.
_START_UP_NOTICES = re.compile(
    "|".join(
        (
            r"All log messages before absl::InitializeLog\(\) is called",
            r"oneDNN custom operations are on",
            r"Could not find cuda drivers",
            r"cpu_feature_guard",
            r"To enable the following instructions",
            r"rebuild TensorFlow with the appropriate compiler flags",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"failed call to cuInit",
            r"TF-TRT Warning",
            r"computation placer already registered",
            r"This TensorFlow binary is optimized",
        )
    )
)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow now, holding back its start-up notices (all of them with verbose=False).

    Call before anything imports TensorFlow; afterwards the import is a no-op.
    """
    if verbose or "tensorflow" in sys.modules:
        return
    if LOG_LEVEL_ENV in os.environ:  # the user chose a level: theirs to see
        import tensorflow  # noqa: F401
        return
    os.environ[LOG_LEVEL_ENV] = "3"  # errors still reach the user as Python exceptions
    captured = _import_with_fd2_captured()
    for line in captured.splitlines():
        if line.strip() and not _START_UP_NOTICES.search(line):
            sys.stderr.write(line + "\n")


def _import_with_fd2_captured() -> str:
    """Import TensorFlow with file descriptor 2 sent to a temporary file; return what it wrote."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode("utf-8", errors="replace")
