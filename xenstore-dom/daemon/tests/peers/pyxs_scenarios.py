"""Drive xcp-xenstored with pyxs (Debian python3-pyxs), unmodified.

Usage: /usr/bin/python3 pyxs_scenarios.py SOCKET. Prints PASS <name> per
scenario and exits non-zero on the first failure.
"""
import errno
import sys

import pyxs
from pyxs.exceptions import PyXSError

SOCK = sys.argv[1]


def client():
    return pyxs.Client(unix_socket_path=SOCK)


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except PyXSError as e:
        assert e.args[0] == code, (e.args, code)
        return
    raise AssertionError("expected errno %d" % code)


with client() as c:
    c.write(b"/vm/1/name", b"guest")
    assert c.read(b"/vm/1/name") == b"guest"
    c.mkdir(b"/vm/1/device")
    assert sorted(c.list(b"/vm/1")) == [b"device", b"name"]
    assert c.exists(b"/vm/1/name") and not c.exists(b"/vm/2")
    c.delete(b"/vm/1/device")
    assert c.list(b"/vm/1") == [b"name"]
    expect_errno(errno.ENOENT, c.read, b"/nope")
    print("PASS write-read-list-rm")

    c.set_perms(b"/vm/1/name", [b"n0", b"r5"])
    assert c.get_perms(b"/vm/1/name") == [b"n0", b"r5"]
    print("PASS perms")

    c.transaction()
    c.write(b"/tx/a", b"1")
    assert c.commit() is True
    assert c.read(b"/tx/a") == b"1"
    c.transaction()
    c.write(b"/tx/b", b"2")
    c.rollback()
    assert not c.exists(b"/tx/b")
    print("PASS transactions")

    # A conflicting commit from another client: EAGAIN.
    with client() as other:
        c.transaction()
        c.read(b"/tx/a")
        other.write(b"/tx/a", b"3")
        c.write(b"/tx/a", b"4")
        # pyxs reports the EAGAIN of a conflicting commit as False.
        assert c.commit() is False
        assert c.read(b"/tx/a") == b"3"
    print("PASS transaction-conflict")

    # pyxs only issues RELEASE/RESUME/SET_TARGET when it believes it runs in
    # the control domain (/proc/xen/capabilities); a socket client is dom0.
    c.SU = True
    assert c.get_domain_path(5) == b"/local/domain/5"
    assert not c.is_domain_introduced(5)
    c.introduce_domain(5, 1234, 7)
    assert c.is_domain_introduced(5)
    c.release_domain(5)
    assert not c.is_domain_introduced(5)
    expect_errno(errno.ENOENT, c.release_domain, 5)
    c.introduce_domain(6, 1, 1)
    c.introduce_domain(7, 2, 2)
    c.set_target(7, 6)
    c.resume_domain(6)
    c.release_domain(6)
    c.release_domain(7)
    print("PASS domains")

with client() as c:
    m = c.monitor()
    m.watch(b"/watched", b"tok")
    events = m.wait()
    first = next(events)
    assert first == (b"/watched", b"tok"), first
    with client() as w:
        w.write(b"/watched/x", b"1")
    second = next(events)
    assert second == (b"/watched/x", b"tok"), second
    m.unwatch(b"/watched", b"tok")
    print("PASS watch")

print("ALL PASS")
