"""Work done in a forked child of pyctr's own process (not a container): a private mount namespace for
export, commit and `cp` of a stopped container, which must never leak into the caller's. The child's
PyctrError comes back to the parent over a pipe and is raised there, with its exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from pyctr.errors import PyctrError


def run_in_child(action: Callable[[], None]) -> None:
    """Run `action` in a forked child and wait for it; its error (PyctrError, or any other as exit code 125)
    is re-raised here. A reader of its output that went away (BrokenPipeError) is no error to report."""
    sys.stdout.flush()
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        code = 0
        try:
            os.close(report_r)
            action()
        except PyctrError as e:
            code = e.exit_code
            os.write(report_w, json.dumps({"message": e.message, "code": e.exit_code,
                                           "kind": type(e).__name__}).encode())
        except BrokenPipeError:
            code = 1
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            code = 125
            os.write(report_w, json.dumps({"message": f"{type(e).__name__}: {e}", "code": 125}).encode())
        finally:
            try:
                sys.stdout.flush()
            except BaseException:  # noqa: BLE001 - the child exits whatever happens
                pass
            os._exit(code)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as f:
        message = f.read()
    os.waitpid(child, 0)
    if message:
        report = json.loads(message)
        raise error_class(report.get("kind"))(report["message"], exit_code=report["code"])


def error_class(name: str | None) -> type[PyctrError]:
    """The child's error class by name, among pyctr.errors' (so a 404 stays a NotFoundError); else PyctrError."""
    from pyctr import errors

    found = getattr(errors, name or "", None)
    return found if isinstance(found, type) and issubclass(found, PyctrError) else PyctrError
