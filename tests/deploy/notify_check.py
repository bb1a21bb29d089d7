"""hvmmd's sd_notify messages, read from a socket playing systemd's.

Runs hvmmd with NOTIFY_SOCKET and WATCHDOG_USEC (0.4 s) and expects:
READY=1 with a STATUS once it serves, WATCHDOG=1 pings (at least three),
and after SIGTERM STOPPING=1, then exit 0. Every wait is bounded.
Usage: notify_check.py HVMMD TMPDIR
"""
import os
import signal
import socket
import subprocess
import sys
import time

hvmmd, tmp = sys.argv[1], sys.argv[2]
path = os.path.join(tmp, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(1.0)
env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
env.pop("WATCHDOG_PID", None)
proc = subprocess.Popen(
    [hvmmd, f"--listen=unix:{tmp}/n/hvmm.sock", "--metrics-addr=none",
     "--pcpus=1", "--frames=256"],
    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def receive(predicate, what, limit=120.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            if proc.poll() is not None:
                break
            continue
        if predicate(msg):
            return msg
    raise SystemExit(f"notify_check: no {what} (hvmmd exit {proc.poll()})")


try:
    ready = receive(lambda m: "READY=1" in m.split("\n"), "READY=1")
    assert "STATUS=serving on unix:" in ready, ready
    for _ in range(3):
        receive(lambda m: m == "WATCHDOG=1", "WATCHDOG=1")
    proc.send_signal(signal.SIGTERM)
    stopping = receive(lambda m: "STOPPING=1" in m.split("\n"), "STOPPING=1")
    assert "STATUS=" in stopping, stopping
    rc = proc.wait(timeout=120)
    assert rc == 0, f"hvmmd exited {rc}"
finally:
    if proc.poll() is None:
        proc.kill()
print("notify_check: READY, WATCHDOG x3, STOPPING, exit 0")
