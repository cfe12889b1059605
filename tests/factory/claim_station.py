"""A claim-only station for multi-station tests: `python -m tests.factory.claim_station ...`.

It does what a real station does to the manifest, board after board, without the boards: claim
the ID for board `<station>-b<n>`, mark the identity transfer (stage `provision`), "write" the
identity (a file named after the board in BOARDS_DIR, as a board's flash would hold it), then
record the board done. It says each step on stdout; with --hold-at it stops at that board after
the named stage and waits for a line on stdin (the test SIGKILLs it there).
"""

import argparse
import os
import sys
from pathlib import Path

from iotcprov.factory.manifest import open_manifest


def write_identity(boards: Path, board: str, device_id: str) -> None:
    """Atomically, like the firmware's identity folder switch."""
    temporary = boards / f".{board}.tmp"
    temporary.write_text(device_id)
    os.replace(temporary, boards / board)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("station")
    parser.add_argument("boards_dir", type=Path)
    parser.add_argument("--boards", type=int, default=3)
    parser.add_argument("--hold-at", type=int)
    parser.add_argument("--hold-stage", choices=("claimed", "provision"), default="provision")
    parser.add_argument("--quiet", action="store_true", help="only the last line")
    args = parser.parse_args(argv)
    say = (lambda *words: None) if args.quiet else (lambda *words: print(*words, flush=True))
    done = 0
    with open_manifest(args.manifest, station=args.station) as manifest:
        run_id = manifest.start_run({"claim_station": args.station})
        for number in range(args.boards):
            board = f"{args.station}-b{number}"
            record = manifest.claim(board, "usb", run_id)
            if record is None:
                say("none", board)
                continue
            device = record.device_id
            say("claimed", device, board, record.attempts)
            if args.hold_at == number and args.hold_stage == "claimed":
                say("holding", device, board)
                sys.stdin.readline()
            manifest.update(device, board, stage="provision")
            write_identity(args.boards_dir, board, device)
            if args.hold_at == number and args.hold_stage == "provision":
                say("holding", device, board)
                sys.stdin.readline()
            manifest.finish(
                device, board, fingerprint="sha256:" + device.encode().hex()[:16], firmware_version="1"
            )
            done += 1
            say("done", device, board)
        manifest.end_run(run_id, {"done": done})
    print("exit", done, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
