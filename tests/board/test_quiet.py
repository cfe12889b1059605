"""capture_stdout: what a library prints is caught for the calling thread only, and sys.stdout is
itself again afterwards (contextlib.redirect_stdout, used from several threads, lost all output)."""

import io
import sys
import threading

from iotcprov.board.quiet import capture_stdout


def test_each_thread_captures_its_own_output_and_others_still_print(monkeypatch):
    real = io.StringIO()
    monkeypatch.setattr(sys, "stdout", real)
    inside = threading.Barrier(5)  # four capturing threads and one that does not capture
    leave = threading.Barrier(5)
    captured: dict[int, str] = {}

    def capturing(number: int) -> None:
        with capture_stdout() as buffer:
            inside.wait(10)
            for _ in range(50):
                print(f"thread {number}")
            leave.wait(10)
        captured[number] = buffer.getvalue()

    def plain() -> None:
        inside.wait(10)
        print("not captured")
        leave.wait(10)

    threads = [threading.Thread(target=capturing, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=plain))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for number in range(4):
        assert captured[number] == f"thread {number}\n" * 50
    assert real.getvalue() == "not captured\n"
    assert sys.stdout is real  # the proxy took itself out
    print("after")
    assert real.getvalue().endswith("after\n")
