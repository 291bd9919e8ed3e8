#!/usr/bin/env python3
"""Write the `pyctr` command for this checkout (called by `make install`).

pip's console script starts Python with `site`, which reads the virtualenv's .pth files: about 7 ms of
every command. This launcher starts the interpreter with -I -S and imports only pyctr/client.py, which
uses built-in modules; when the command must run in-process after all, the client turns `site` on then.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TEMPLATE = '''#!{python} -IS
# pyctr's command, written by `make install` (scripts/write_launcher.py); see pyctr/client.py.
import sys
sys.path.insert(0, {repo!r})
from pyctr.client import main
main()
'''


# pyctr-runtime (the OCI runtime, pyctr/oci/): the same -I -S start; it turns `site` on only for the verbs that
# start a process (create, run, exec), so that `state`, `kill`, `delete` stay as fast as callers call them.
RUNTIME_TEMPLATE = '''#!{python} -IS
# pyctr-runtime, written by `make install` (scripts/write_launcher.py); see pyctr/oci/main.py.
import sys
sys.path.insert(0, {repo!r})
from pyctr.oci.main import main
main()
'''


def main(target: str) -> None:
    repo = Path(__file__).resolve().parent.parent
    python = Path(target).resolve().parent / "python"
    tmp = Path(f"{target}.tmp")
    template = RUNTIME_TEMPLATE if Path(target).name == "pyctr-runtime" else TEMPLATE
    tmp.write_text(template.format(python=python, repo=str(repo)))
    tmp.chmod(0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    main(sys.argv[1])
