"""keytools.overlap.forked: the Barbican fetch of sign/verify runs in a forked process beside the
hash. Its value, its errors (type, exit code, hint, details) and its masking must cross the pipe
exactly as if it had run in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from keytools import overlap, redaction
from keytools.errors import EXIT_CERTIFICATE, CertificateError, UsageError


def test_the_value_is_made_in_another_process():
    assert threading.active_count() == 1  # the precondition for forking
    pid = overlap.forked(os.getpid)
    assert pid() != os.getpid()
    assert pid() == pid()  # asked twice, read once


def test_errors_keep_their_type_exit_code_hint_and_details():
    def fail() -> bytes:
        raise CertificateError("certificate not found in Barbican with ID 1234", "Check the UUID",
                               details={"certificate_uuid": "1234"})

    with pytest.raises(CertificateError) as caught:
        overlap.forked(fail)()
    error = caught.value
    assert error.exit_code == EXIT_CERTIFICATE and error.hint == "Check the UUID"
    assert error.one_line() == "certificate not found in Barbican with ID 1234. Check the UUID."
    assert error.details == {"certificate_uuid": "1234"}
    assert any("in the forked check process" in note and "fail" in note for note in error.__notes__)


def test_secrets_known_only_to_the_child_are_masked_before_they_cross():
    secret = "pa55-only-the-child-knows"

    def fail() -> bytes:
        redaction.register_secret(secret)  # as auth does when it reads clouds.yaml
        raise UsageError(f"cloud refused password {secret}", f"not {secret}")

    with pytest.raises(UsageError) as caught:
        overlap.forked(fail)()
    shown = caught.value.one_line() + "".join(caught.value.__notes__) + str(caught.value)
    assert secret not in shown and redaction.MASK in caught.value.message
    assert secret not in "".join(caught.value.__notes__)


class _Unpicklable(Exception):
    def __init__(self, what: str, handle: object) -> None:
        super().__init__(what)
        self.handle = handle


def test_an_unpicklable_error_arrives_as_a_runtime_error():
    def fail() -> bytes:
        raise _Unpicklable("socket trouble", lambda: None)

    with pytest.raises(RuntimeError, match="_Unpicklable: socket trouble"):
        overlap.forked(fail)()


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="forked check died"):
        overlap.forked(lambda: os._exit(3))()


def test_with_other_threads_running_it_runs_in_the_caller():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        calls: list[int] = []
        fetch = overlap.forked(lambda: calls.append(os.getpid()) or os.getpid())
        assert fetch() == os.getpid()  # forking a threaded process is unsafe: no fork
        assert fetch() == os.getpid() and len(calls) == 1  # still run once, as in a child
    finally:
        stop.set()
        thread.join()


def test_buffered_output_is_not_written_twice():
    """A child that writes (a library printing a warning, a log handler flushing) must not write
    this process's buffered output a second time."""
    child = "lambda: (print('child warns', flush=True), sys.stderr.write('child logs\\n'), b'pem')[2]"
    script = ("import sys; from keytools import overlap\n"
              "sys.stdout.write('out before fork\\n'); sys.stderr.write('err before fork, ')\n"
              f"print(overlap.forked({child})())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "out before fork\nchild warns\nb'pem'\n"
    assert done.stderr == "err before fork, child logs\n"


def test_the_child_dies_with_its_parent(tmp_path):
    """kill -9 of keytools while Barbican hangs must not leave the fetching child behind."""
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    script = ("import os, time; from keytools import overlap\n"
              f"fetch = overlap.forked(lambda: (open({str(pid_file)!r}, 'w').write(str(os.getpid())), "
              "time.sleep(120)))\n"
              "fetch()\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):  # the child writes its pid once it runs
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        for _ in range(600):
            if not _running(child):
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the forked child outlived its parent")
    finally:
        parent.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap what it inherits)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
