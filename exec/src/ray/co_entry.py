#!/usr/bin/env python3
"""co_entry.py -- codex-orchestrator stage wrapper, run as a Ray Jobs entrypoint.

Shipped by the runner inside every Ray stage's working-directory package
(exec/src/ray/co_entry.py, embedded in the binary); nothing is installed on the cluster.

Stdlib only, Python >= 3.8, Linux (POSIX fallback without subreaper).

Runs ``/bin/sh -c CMD`` in its own session / process group and writes everything
the stage produces to its own stdout (which Ray appends to the job's driver log)
as self-delimiting ASCII records, one per line, each written with one write(2):

    @@co:<nonce> <seq> <kind> <t_ms> <payload_b64>\\n

  nonce   per-run token chosen by the submitter ([A-Za-z0-9_-]{1,64}); lines
          without ``@@co:<nonce> `` are Ray's own lines (or stray output) and are
          ignored by the reader
  seq     0,1,2,... over all records of this run: the reader drops seq <= last
          seen (the log WebSocket replays from the start on reconnect) and can
          detect gaps
  kind    b = begin (payload: JSON), o = stdout bytes, e = stderr bytes,
          x = exit (payload: JSON, always the last record)
  t_ms    milliseconds since co_entry started
  payload standard base64 (may be empty for nothing); o/e chunks are <= 3072 raw
          bytes so a record line stays < 4.2 KB

Exit record JSON: {"v":1,"code":int|null,"signal":int|null,"timed_out":bool,
"stopped":bool,"stop_signal":int|null,"duration_ms":int,"out_bytes":int,
"err_bytes":int,"cleanup_signalled":int,"started":bool,"records":int}
  cleanup_signalled  number of TERM deliveries made while cleaning up (0 = nothing was left)
  code      exit status of the stage shell when it exited normally
  signal    signal number when the stage shell was killed by a signal
  timed_out co_entry's own --timeout-ms fired (group got TERM, grace, KILL)
  stopped   co_entry received TERM/INT/HUP (e.g. Ray job stop) before the stage ended,
            or lost its parent (parent_lost=true: Ray supervisor/head died)

co_entry's own exit status mirrors the stage (code, or 128+signal; 124 on timeout;
128+stop_signal when stopped) so Ray's SUCCEEDED/FAILED matches, but the x record is
authoritative. No x record in the log => the run was lost (co_entry SIGKILLed, node died).

Process cleanup: co_entry leaves Ray's process group (forking a thin relay when it is
the group leader, i.e. when the entrypoint used `exec`) so Ray's fate-sharing
`kill -9 -<pgid>` on supervisor death cannot kill it before it cleans up; it polls
getppid() and treats a re-parent as a stop. The stage runs in a new session (setsid),
with PDEATHSIG=KILL on the stage shell as a last resort. co_entry makes itself a
child subreaper (prctl PR_SET_CHILD_SUBREAPER) so double-forked / re-setsid'd
descendants are re-parented to it instead of init. On TERM, timeout, or normal end
of the stage shell it sends TERM to the stage's process group and to every remaining
descendant, waits --grace-ms, then KILLs whatever is left and reaps. Keep grace below
Ray's RAY_JOB_STOP_WAIT_TIME_S (default 3 s), after which Ray SIGKILLs co_entry itself.

--stop-grace-ms replaces --grace-ms when the stop comes from a signal (Ray's job stop),
since Ray SIGKILLs the entrypoint's tree RAY_JOB_STOP_WAIT_TIME_S after its SIGTERM.

--private-copy runs the stage in a fresh copy of the working directory (removed at the
end): Ray unpacks a package once per node and shares that directory between every job
that uses the same package, so a stage that writes files must not write there.

Usage:
  python3 co_entry.py --nonce N [--timeout-ms MS] [--grace-ms MS] [--stop-grace-ms MS]
                      [--settle-ms MS] [--private-copy]
                      (--cmd-b64 B64 | --cmd-file PATH | env CO_CMD_B64)
"""

import argparse
import base64
import ctypes
import errno
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PREFIX = b"@@co:"
# Where the runner puts this file in the package; left out of a private copy.
WRAPPER_DIR = "_codex_orchestrator"
CHUNK = 3072
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

_t0 = time.monotonic()


def now_ms():
    return int((time.monotonic() - _t0) * 1000)


class Out:
    def __init__(self, nonce):
        self.head = PREFIX + nonce.encode("ascii") + b" "
        self.seq = 0

    def rec(self, kind, payload=b""):
        line = b"%s%d %s %d %s\n" % (
            self.head, self.seq, kind, now_ms(), base64.b64encode(payload))
        self.seq += 1
        view = memoryview(line)
        while view:
            try:
                n = os.write(1, view)
            except InterruptedError:
                continue
            view = view[n:]

    def data(self, kind, data):
        for i in range(0, len(data), CHUNK):
            self.rec(kind, data[i:i + CHUNK])

    def js(self, kind, obj):
        self.rec(kind, json.dumps(obj, separators=(",", ":")).encode())


def set_subreaper():
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def descendants(root):
    """PIDs of all live descendants of root (via /proc ppid links)."""
    kids = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                st = f.read()
            # pid (comm) state ppid ... ; comm may contain spaces/parens
            rest = st[st.rindex(b")") + 2:].split()
            if rest[0] == b"Z":
                continue
            kids.setdefault(int(rest[1]), []).append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def signal_all(pgid, sig):
    """Signal the stage's process group and every descendant of ours. Returns count."""
    n = 0
    try:
        os.killpg(pgid, sig)
        n += 1
    except OSError:
        pass
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, sig)
            n += 1
        except OSError:
            pass
    return n


def reap_all(watch_pid, found):
    """Reap every exited child (stage shell and adopted orphans); record the
    stage shell's raw wait status in found[0]."""
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == watch_pid:
            found[0] = st


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except OSError as e:
        return e.errno == errno.EPERM


def relay():
    """Fork if we lead our process group; parent relays signals and exit status.
    Returns the relay's pid in the child (or None when no relay was needed)."""
    try:
        os.setsid()
        return None
    except OSError:
        pass  # we are a process group leader: need a child to leave the group
    pid = os.fork()
    if pid == 0:
        os.setsid()
        return os.getppid()

    def fwd(signum, _frame):
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, fwd)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    while True:
        try:
            _, st = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFEXITED(st):
        os._exit(os.WEXITSTATUS(st))
    os._exit(128 + os.WTERMSIG(st))


def _pdeathsig_kill():
    """preexec for the stage shell: SIGKILL it if co_entry dies without cleaning up."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nonce", required=True)
    ap.add_argument("--timeout-ms", type=int, default=0, help="0 = no timeout")
    ap.add_argument("--grace-ms", type=int, default=2000)
    ap.add_argument("--stop-grace-ms", type=int, default=None,
                    help="grace after a stop signal (default: --grace-ms)")
    ap.add_argument("--private-copy", action="store_true",
                    help="run in a private copy of the working directory")
    ap.add_argument("--settle-ms", type=int, default=0,
                    help="wait this long (still stoppable) before starting the stage")
    ap.add_argument("--cmd-b64")
    ap.add_argument("--cmd-file")
    a = ap.parse_args()

    if a.cmd_b64 is not None:
        cmd = base64.b64decode(a.cmd_b64, validate=True)
    elif a.cmd_file is not None:
        with open(a.cmd_file, "rb") as f:
            cmd = f.read()
    elif "CO_CMD_B64" in os.environ:
        cmd = base64.b64decode(os.environ["CO_CMD_B64"], validate=True)
    else:
        ap.error("no command (--cmd-b64, --cmd-file or CO_CMD_B64)")

    out = Out(a.nonce)

    # Leave Ray's process group. Ray runs the entrypoint with start_new_session=True and,
    # when its supervisor actor dies (head stopped, node lost), a watcher does
    # `kill -9 -<that pgid>`: a co_entry inside that group could never clean up. If we
    # lead that group (entrypoint used `exec`), fork: the parent stays as a thin relay
    # (forwards TERM/INT/HUP, exits with the child's status) and the child setsid()s.
    relay_pid = relay()
    parent = os.getppid()

    # Signals: wake the select loop through a pipe; remember the first stop signal.
    stop_sig = []
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)

    def on_stop(signum, _frame):
        if not stop_sig:
            stop_sig.append(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_stop)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select
    # Ray blocks SIGINT in its workers and the mask is inherited: undo for us + child.
    signal.pthread_sigmask(signal.SIG_UNBLOCK,
                           {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD})

    subreaper = set_subreaper()

    if a.settle_ms > 0:
        deadline = time.monotonic() + a.settle_ms / 1000.0
        while not stop_sig and time.monotonic() < deadline:
            time.sleep(0.005)
    if stop_sig:
        out.js(b"x", {"v": 1, "code": None, "signal": None, "timed_out": False,
                      "stopped": True, "stop_signal": stop_sig[0], "started": False,
                      "duration_ms": now_ms(), "out_bytes": 0, "err_bytes": 0,
                      "cleanup_signalled": 0, "records": out.seq + 1})
        return 128 + stop_sig[0]

    workdir = None
    if a.private_copy:
        src = os.getcwd()
        try:
            workdir = tempfile.mkdtemp(prefix="co-stage-")
            shutil.copytree(src, workdir, symlinks=True, dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names if n == WRAPPER_DIR
                                                     and os.path.samefile(d, src)])
        except OSError as e:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            out.js(b"x", {"v": 1, "code": None, "signal": None, "timed_out": False,
                          "stopped": False, "stop_signal": None, "started": False,
                          "error": "cannot copy the working directory: %s" % e,
                          "duration_ms": now_ms(), "out_bytes": 0, "err_bytes": 0,
                          "cleanup_signalled": 0, "records": out.seq + 1})
            return 125

    env = dict(os.environ)
    env.pop("CO_CMD_B64", None)
    proc = subprocess.Popen(
        [b"/bin/sh", b"-c", cmd],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, close_fds=True, env=env, cwd=workdir,
        preexec_fn=_pdeathsig_kill if sys.platform.startswith("linux") else None)
    pgid = proc.pid  # setsid => pgid == sid == pid
    out.js(b"b", {"v": 1, "pid": proc.pid, "pgid": pgid, "co_pid": os.getpid(),
                  "host": socket.gethostname(), "cwd": workdir or os.getcwd(),
                  "subreaper": subreaper, "relay_pid": relay_pid, "python": sys.version.split()[0],
                  "timeout_ms": a.timeout_ms, "grace_ms": a.grace_ms})

    sel = selectors.DefaultSelector()
    streams = {proc.stdout.fileno(): b"o", proc.stderr.fileno(): b"e"}
    files = {proc.stdout.fileno(): proc.stdout, proc.stderr.fileno(): proc.stderr}
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    sel.register(rfd, selectors.EVENT_READ)
    nbytes = {b"o": 0, b"e": 0}

    start = time.monotonic()
    deadline = start + a.timeout_ms / 1000.0 if a.timeout_ms > 0 else None
    timed_out = False
    parent_lost = False
    found = [None]           # raw wait status of the stage shell, once reaped
    kill_phase = None        # None | ("term", t_kill_at) | ("kill", t_give_up)
    killed = 0

    def drain(fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            sel.unregister(fd)
            files.pop(fd).close()
            del streams[fd]
            return False
        nbytes[streams[fd]] += len(data)
        out.data(streams[fd], data)
        return True

    def start_kill():
        nonlocal kill_phase, killed
        if kill_phase is None:
            grace = a.grace_ms
            if stop_sig and stop_sig[0] != 0 and a.stop_grace_ms is not None:
                grace = a.stop_grace_ms
            killed += signal_all(pgid, signal.SIGTERM)
            kill_phase = ("term", time.monotonic() + grace / 1000.0)

    while True:
        now = time.monotonic()
        reap_all(proc.pid, found)  # the stage shell and adopted orphans (subreaper)
        status = found[0]
        if not stop_sig and os.getppid() != parent:
            # relay / Ray supervisor is gone (head stopped, SIGKILL after stop grace...)
            parent_lost = True
            stop_sig.append(0)
        if stop_sig and kill_phase is None:
            start_kill()
        if deadline is not None and now >= deadline and status is None and kill_phase is None:
            timed_out = True
            start_kill()
        if status is not None and kill_phase is None:
            # Stage shell ended: nothing of the run may outlive it.
            if group_alive(pgid) or descendants(os.getpid()):
                start_kill()
            else:
                kill_phase = ("kill", now + 0.5)  # nothing to kill; just drain to EOF
        if kill_phase is not None and kill_phase[0] == "term" and now >= kill_phase[1]:
            if group_alive(pgid) or descendants(os.getpid()):
                signal_all(pgid, signal.SIGKILL)
            kill_phase = ("kill", now + 2.0)
        if status is not None and not streams:
            break
        if kill_phase is not None and kill_phase[0] == "kill" and now >= kill_phase[1] \
                and status is not None:
            # A writer we could not kill still holds a pipe: stop waiting for EOF.
            for fd in list(streams):
                while drain(fd) and fd in streams:
                    pass
                if fd in streams:
                    sel.unregister(fd)
                    files.pop(fd).close()
                    del streams[fd]
            break
        timeout = 0.05 if kill_phase is not None else 0.25  # also the parent-loss poll period
        if deadline is not None and kill_phase is None:
            timeout = max(0.0, min(timeout, deadline - now))
        for key, _ in sel.select(timeout):
            if key.fd == rfd:
                try:
                    while os.read(rfd, 512):
                        pass
                except BlockingIOError:
                    pass
            elif key.fd in streams:
                drain(key.fd)

    # Final sweep: anything still alive in the group or below us gets KILL.
    left = descendants(os.getpid())
    if left or group_alive(pgid):
        signal_all(pgid, signal.SIGKILL)
        time.sleep(0.05)
    reap_all(proc.pid, found)
    proc.returncode = 0  # we reaped it ourselves; keep Popen.__del__ quiet
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)

    status = found[0]
    code = sig = None
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
    out.js(b"x", {"v": 1, "code": code, "signal": sig, "timed_out": timed_out,
                  "stopped": bool(stop_sig), "stop_signal": (stop_sig[0] or None) if stop_sig else None,
                  "parent_lost": parent_lost, "started": True, "duration_ms": int((time.monotonic() - start) * 1000),
                  "out_bytes": nbytes[b"o"], "err_bytes": nbytes[b"e"],
                  "cleanup_signalled": killed, "records": out.seq + 1})
    if timed_out:
        return 124
    if stop_sig:
        return 128 + (stop_sig[0] or signal.SIGTERM)
    if sig is not None:
        return 128 + sig
    return code


if __name__ == "__main__":
    sys.exit(main())
