"""Opens N connections to a XenAPI URL that each send a request head with a
large Content-Length, then trickle one body byte per second on every one
still open, for SECS seconds. Prints progress lines ("TRICKLE ...") and a
last line "TRICKLE DONE opened=.. refused=.. cut=.. open=.. peak=..":
refused = closed by the server within a second of opening, cut = closed
later (a deadline or an eviction), open = still open at the end, peak =
most open at once after the first 5 s. Everything on 127.0.0.1."""

import resource
import select
import socket
import sys
import time

port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))

HEAD = (
    b"POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
)

started = time.monotonic()
conns = {}  # socket -> when opened
refused = cut = failed = 0
# Connect without waiting for each: QEMU's user network accepts slowly
# under TCG. Batches of 100, each given up to 20 s.
for batch in range(0, n, 100):
    pending = {}
    for i in range(batch, min(n, batch + 100)):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending[s] = True
    deadline = time.monotonic() + 20
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], list(pending), [], 0.5)
        for s in writable:
            del pending[s]
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                failed += 1
                s.close()
                continue
            try:
                s.send(HEAD)
            except OSError:
                refused += 1
                s.close()
                continue
            conns[s] = time.monotonic()
    for s in pending:
        failed += 1
        s.close()
    print("TRICKLE connecting: %d open, %d failed after %.1f s"
          % (len(conns), failed, time.monotonic() - started), flush=True)
print("TRICKLE opened %d of %d in %.1f s (%d failed to connect)"
      % (len(conns), n, time.monotonic() - started, failed), flush=True)


def closed_by_server(s):
    try:
        data = s.recv(4096)
        return data == b"" or not data.startswith(b"HTTP/1.1 100")
    except BlockingIOError:
        return False
    except OSError:
        return True


peak = 0
last_report = 0.0
while time.monotonic() - started < secs:
    now = time.monotonic()
    for s in list(conns):
        gone = closed_by_server(s)
        if not gone:
            try:
                s.send(b" ")
            except BlockingIOError:
                pass
            except OSError:
                gone = True
        if gone:
            if now - conns[s] < 1.0:
                refused += 1
            else:
                cut += 1
            del conns[s]
            s.close()
    if now - started >= 5:
        peak = max(peak, len(conns))
    if now - last_report >= 5:
        last_report = now
        print("TRICKLE t=%.0f s open=%d refused=%d cut=%d"
              % (now - started, len(conns), refused, cut), flush=True)
    time.sleep(1)
print("TRICKLE DONE opened=%d refused=%d cut=%d open=%d peak=%d"
      % (n - failed, refused, cut, len(conns), peak), flush=True)
