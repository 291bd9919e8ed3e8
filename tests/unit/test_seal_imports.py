"""After pivot_root an import would read the container's files as root: init seals the import system first."""

import subprocess
import sys

PROGRAM = """
import os, sys
from pyctr.runtime.process.sequence import seal_imports
seal_imports()
import os.path  # already loaded: still importable
try:
    import csv  # not loaded yet: must not be searched for on disk
except ImportError:
    print("sealed")
else:
    print("LEAK")
"""


def test_seal_imports_blocks_new_modules_but_keeps_loaded_ones():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "sealed"
