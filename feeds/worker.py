"""A feed parse worker process: `python -m feeds.worker`, started by `feeds.workers`.

It imports only `feeds.parse` (feedparser) and the standard library, so it costs about 25 MB
instead of a copy of the bot. Protocol on stdin/stdout: frames of a little-endian u64 length
and a pickle (protocol 5). Each job `(body, headers, url, now)` gets one answer frame:
`("ok", result)` with what `feeds.parse.parse_job` returns (a `ParsedFeed` or a `(kind,
message)` tuple), or `("raised", traceback)` if it raised (a bug: the worker carries on, the
pool raises `ParseWorkerError` in the bot, as the thread parse would raise). The worker exits
when its stdin closes (the pool shut it down, or the bot died) and ignores SIGINT: Ctrl-C
reaches the whole process group, and the bot owns the shutdown.

Only the pool writes to the worker and it trusts what comes back: the pipes are not a
security boundary (the worker runs as the same user).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from typing import IO, Any

FRAME_HEADER = struct.Struct("<Q")
PICKLE_PROTOCOL = 5
# Far above any real frame (bodies are capped at a few MB): a larger length means the stream
# is corrupt, not that a huge frame follows.
MAX_FRAME_BYTES = 1 << 30
# `--test-hooks` makes a `("hook", name)` job run a test hook instead of a parse (see _hook).
TEST_HOOKS_FLAG = "--test-hooks"


def encode_frame(obj: object) -> bytes:
    """Return `obj` as one frame: its pickle preceded by the pickle's length."""
    data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    return FRAME_HEADER.pack(len(data)) + data


def _read_frame(stream: IO[bytes]) -> Any | None:
    """Return the next object on `stream`, or None at end of file."""
    header = _read_exactly(stream, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes: the job stream is corrupt")
    data = _read_exactly(stream, size)
    if data is None:
        return None
    return pickle.loads(data)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks = []
    missing = size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            return None  # EOF, possibly mid-frame: the parent is gone
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _hook(name: str) -> object:
    """Test-only jobs, honoured with `--test-hooks`."""
    if name == "modules":
        return sorted(sys.modules)
    if name == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "block":
        while True:
            signal.pause()
    if name == "raise":
        raise RuntimeError("a test hook raised")
    return ("internal", f"unknown test hook {name!r}")


def main(argv: list[str]) -> int:
    """Answer jobs from stdin on stdout until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    test_hooks = TEST_HOOKS_FLAG in argv
    # Frames go to a private copy of stdout; fd 1 and sys.stdout now write to stderr, so a
    # stray print() in a library cannot corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    jobs = sys.stdin.buffer

    from feeds.parse import parse_job  # noqa: PLC0415 (after SIGINT is ignored: the import takes a while)

    try:
        while True:
            job = _read_frame(jobs)
            if job is None:
                return 0
            try:
                if test_hooks and len(job) == 2 and job[0] == "hook":
                    answer: tuple[str, object] = ("ok", _hook(job[1]))
                else:
                    body, headers, url, now = job
                    answer = ("ok", parse_job(body, headers, url, now))
            except Exception:
                answer = ("raised", traceback.format_exc())
            out.write(encode_frame(answer))
            out.flush()
    except BrokenPipeError:
        return 0  # the parent is gone
    finally:
        try:
            out.close()
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
