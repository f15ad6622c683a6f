#!/usr/bin/env python3
"""Run a command and fail if it leaves processes behind.

Usage: python3 .ci/leftovers.py COMMAND [ARGS...]

This process makes itself the "child subreaper" (Linux prctl PR_SET_CHILD_SUBREAPER): every
process the command starts, directly or not, that outlives its parent is re-parented here
instead of to init, so nothing the command starts can escape, not even a daemon that forks
twice or calls setsid(). When the command has exited, the processes still below this one were
left behind by it (an nginx worker whose master was SIGKILLed, a server a test did not stop).
They get a grace period to finish exiting, then they are listed, killed, and the exit status is
1 (or the command's own status if that is already a failure).
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 10


def children_of(pid):
    """Direct children of `pid` (from /proc), as {pid: ppid}."""
    out = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(b')') + 2:].split()
        state, ppid = fields[0], int(fields[1])
        if state != b'Z':
            out[int(entry)] = ppid
    return out


def descendants(root):
    table = children_of(root)
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in table.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def reap():
    """Collect the exit status of re-parented children that have ended (no zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def describe(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return '?'


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit('leftovers.py: prctl(PR_SET_CHILD_SUBREAPER) failed')
    status = subprocess.call(sys.argv[1:])
    me = os.getpid()
    deadline = time.monotonic() + GRACE_SECONDS
    left = descendants(me)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        reap()
        left = descendants(me)
    if not left:
        sys.exit(status)
    print(f'\nleftovers.py: {len(left)} process(es) started by `{" ".join(sys.argv[1:])}` '
          f'still running {GRACE_SECONDS} s after it ended:', file=sys.stderr)
    for pid in left:
        print(f'  {pid}: {describe(pid)}', file=sys.stderr)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    reap()
    sys.exit(status or 1)


if __name__ == '__main__':
    main()
