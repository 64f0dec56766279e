"""Spool write cost: SQLite in WAL mode (what the agent uses) against append-only segment files.

    python bench/spool.py [--messages 20000] [--size 2000]

For each store: put N messages of SIZE bytes one by one (each durable against a process crash),
then take and acknowledge them all; messages per second for both phases. The append-only file is
the baseline: the cheapest possible durable write, with no way to delete acknowledged messages
except by rewriting or rotating segments. The last line is
    sqlite_put_per_s=<float> sqlite_ack_per_s=<float> append_put_per_s=<float> fsync_put_per_s=<float>
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.spool import DiskSpool, Entry  # noqa: E402


def sqlite_rates(directory: Path, n: int, payload: bytes) -> tuple[float, float]:
    spool = DiskSpool(directory / "spool.sqlite", max_bytes=10 * 2**30)
    started = time.perf_counter()
    for i in range(n):
        spool.put(Entry(i, payload, 10))
    put = n / (time.perf_counter() - started)
    spool.reconnected()
    spool.backlog_rate = 1e9  # measure the store, not the drain limit
    started = time.perf_counter()
    taken = 0
    while True:
        entry = spool.take()
        if entry is None:
            break
        spool.done(entry)
        taken += 1
    ack = taken / (time.perf_counter() - started)
    spool.close()
    return put, ack


def append_rate(directory: Path, n: int, payload: bytes, fsync: bool) -> float:
    path = directory / ("segment-fsync" if fsync else "segment")
    started = time.perf_counter()
    with open(path, "ab") as fh:
        for _ in range(n):
            fh.write(len(payload).to_bytes(4, "big") + payload)
            fh.flush()  # in the kernel: survives the process dying, like WAL with synchronous=NORMAL
            if fsync:
                os.fsync(fh.fileno())  # on the disk: survives a power cut
    return n / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=2000, help="bytes per message (a host probe message is ~1.5 kB)")
    args = ap.parse_args()
    payload = os.urandom(args.size // 2).hex().encode()[: args.size]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        put, ack = sqlite_rates(directory, args.messages, payload)
        append = append_rate(directory, args.messages, payload, fsync=False)
        fsynced = append_rate(directory, min(args.messages, 2000), payload, fsync=True)
    print(f"{args.messages} messages of {args.size} B: SQLite WAL put {put:.0f}/s, take+ack {ack:.0f}/s; "
          f"append-only put {append:.0f}/s; append+fsync {fsynced:.0f}/s")
    print(f"sqlite_put_per_s={put:.1f} sqlite_ack_per_s={ack:.1f} append_put_per_s={append:.1f} "
          f"fsync_put_per_s={fsynced:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
