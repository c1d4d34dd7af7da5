"""SIGTERM reaches the main thread's wait whichever thread the kernel hands it to."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

# a thread, not the main one, receives the signal while the main thread waits — what Linux may
# do with a process-wide SIGTERM; a main thread parked in Event.wait() never woke from this
SCRIPT = textwrap.dedent(
    """
    import signal, threading, time
    from loopgate.cli.stop_signals import StopSignals

    signals = StopSignals()

    def send():
        time.sleep(0.3)  # the main thread is waiting by now
        signal.pthread_kill(threading.get_ident(), signal.{name})

    threading.Thread(target=send, daemon=True).start()
    print(signal.Signals(signals.wait()).name)
    """
)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_given_a_stop_signal_delivered_to_another_thread_when_waiting_then_the_main_thread_wakes(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, name), done.stderr
