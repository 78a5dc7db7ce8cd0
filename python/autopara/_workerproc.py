"""A worker process of autoparallelize: ``python -m autopara._workerproc``,
started by the run (``crates/python/src/procs.rs``). It speaks the run's
private binary protocol on its original stdin and stdout (the function's
prints go to stderr), runs the pickled ``ChunkRunner`` it is sent on every
chunk, and ends when its pipe closes, when the run's thread ends, or when
killed; it ignores Ctrl-C (the run stops it).
"""

import os
import signal
import sys



def _read(f):
    head = f.read(8)
    if len(head) < 8:
        return None
    n = int.from_bytes(head, "little")
    body = f.read(n)
    if len(body) < n:
        return None
    return body


def _write(f, body):
    f.write(len(body).to_bytes(8, "little"))
    f.write(body)
    f.flush()


def _die_with_parent():
    """Asks Linux to kill this process when the parent's run thread ends
    (``PR_SET_PDEATHSIG``), and exits if the parent is already gone."""
    parent = int(os.environ.get("AUTOPARA_WORKER_PARENT", "0"))
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if parent and os.getppid() != parent:
        os._exit(1)


def main():
    """Sets up from the first message, then answers chunks until the pipe closes."""
    import pickle

    _die_with_parent()  # first, before the slow imports

    from . import _native
    from ._worker import _describe

    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)  # the function's prints go to stderr, not into the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run stops its workers
    rf = os.fdopen(rfd, "rb", buffering=1 << 16)
    wf = os.fdopen(wfd, "wb", buffering=1 << 16)
    body = _read(rf)
    if body is None:
        return
    _tag, _index, payload = _native.decode_message(body)
    try:
        # The parent's import path first, so that functions pickled by
        # reference import here as they did there.
        sys_path, runner = pickle.loads(payload)
        sys.path[:] = sys_path
        runner = pickle.loads(runner)
        runner.setup()
    except Exception as exc:  # noqa: BLE001 - reported to the run, which stops
        _write(wf, _native.encode_setup_reply(_describe(exc)))
        return
    _write(wf, _native.encode_setup_reply(None))
    while True:
        body = _read(rf)
        if body is None:
            return
        _tag, chunk, items = _native.decode_message(body)
        _write(wf, _native.encode_results(chunk, runner(items)))


if __name__ == "__main__":
    main()
