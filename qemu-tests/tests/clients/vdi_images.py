"""Disk images in and out of stordom's SR through xapi's HTTP handlers,
as a stock client moves them: PyPI XenAPI for the calls, http.client for
the bodies. Used by qemu-tests/tests/stordom_images.rs.

usage: vdi_images.py URL PASSWORD WORKDIR

WORKDIR holds image.raw (made by the test) and receives the exports.
Prints one line per check and IMAGES OK at the end.
"""
import hashlib
import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.parse

import XenAPI

url, pw, work = sys.argv[1:4]
u = urllib.parse.urlparse(url)
s = XenAPI.Session(url)
s.xenapi.login_with_password("root", pw, "1.0", "stordom-images-qemu-test")
x = s.xenapi
sid = s._session
sr = x.pool.get_default_SR(x.pool.get_all()[0])
MIB = 1 << 20


def sha(path, limit=None):
    h = hashlib.sha256()
    left = limit if limit is not None else os.path.getsize(path)
    with open(path, "rb") as f:
        while left > 0:
            b = f.read(min(left, MIB))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def new_vdi(name, size):
    return x.VDI.create({
        "name_label": name, "name_description": "", "SR": sr,
        "virtual_size": str(size), "type": "user", "sharable": False,
        "read_only": False, "other_config": {},
    })


def put(vdi, path, fmt, task=None):
    """PUT /import_raw_vdi; returns (status, seconds)."""
    q = {"session_id": sid, "vdi": vdi, "format": fmt}
    if task:
        q["task_id"] = task
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    started = time.monotonic()
    c.putrequest("PUT", "/import_raw_vdi?" + urllib.parse.urlencode(q))
    c.putheader("Content-Length", str(os.path.getsize(path)))
    c.endheaders()
    with open(path, "rb") as f:
        while True:
            b = f.read(256 * 1024)
            if not b:
                break
            c.send(b)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body, time.monotonic() - started


def get(vdi, path, fmt):
    """GET /export_raw_vdi into path; returns the Content-Length."""
    q = {"session_id": sid, "vdi": vdi, "format": fmt}
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request("GET", "/export_raw_vdi?" + urllib.parse.urlencode(q))
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read()[:500])
    length = int(r.getheader("Content-Length"))
    got = 0
    with open(path, "wb") as f:
        while True:
            b = r.read(256 * 1024)
            if not b:
                break
            f.write(b)
            got += len(b)
    c.close()
    assert got == length, (got, length)
    return length


raw = os.path.join(work, "image.raw")
raw_len = os.path.getsize(raw)
vdi_size = 2 * raw_len

# 1. Import a raw image with a task the client made, watching its progress.
a = new_vdi("images-a", vdi_size)
task = x.task.create("import image.raw", "")
seen = []
done = threading.Event()


def watch():
    s2 = XenAPI.Session(url)
    s2.xenapi.login_with_password("root", pw, "1.0", "stordom-images-progress")
    while not done.is_set():
        seen.append((s2.xenapi.task.get_status(task), s2.xenapi.task.get_progress(task)))
        time.sleep(0.2)
    s2.xenapi.session.logout()


w = threading.Thread(target=watch)
w.start()
status, body, secs = put(a, raw, "raw", task)
done.set()
w.join()
assert status == 200, (status, body)
print(f"import raw: {raw_len} bytes in {secs:.1f} s ({raw_len / secs / MIB:.2f} MiB/s)", flush=True)
assert x.task.get_status(task) == "success", x.task.get_record(task)
assert a in x.task.get_result(task), x.task.get_result(task)
moving = sorted({p for st, p in seen if st == "pending" and 0.0 < p < 1.0})
print(f"progress seen while pending: {len(moving)} values, {moving[:3]} .. {moving[-3:]}", flush=True)
assert len(moving) >= 2, seen
progress = [p for st, p in seen if st == "pending"]
assert progress == sorted(progress), progress

# Thin: the image's zero half is not allocated.
x.SR.scan(sr)
util = int(x.VDI.get_physical_utilisation(a))
print(f"VDI physical_utilisation {util} of virtual {vdi_size}", flush=True)
assert util <= raw_len // 2 + 2 * MIB, util

# 2. Export raw: the image, then zeros to the VDI's end.
out = os.path.join(work, "a.raw")
n = get(a, out, "raw")
assert n == vdi_size, n
assert sha(out, raw_len) == sha(raw), "export differs from the import"
with open(out, "rb") as f:
    f.seek(raw_len)
    assert f.read().count(0) == vdi_size - raw_len
print(f"export raw: sha256 {sha(raw)} matches the imported image", flush=True)

# 3. Export as VHD: qemu-img reads it back as the same disk.
vhd = os.path.join(work, "a.vhd")
n = get(a, vhd, "vhd")
assert n < vdi_size, f"a dynamic VHD leaves holes out ({n} bytes)"
# qemu's vpc driver has no checker (`qemu-img check` exits 63): its info
# and a conversion read every table instead.
info = subprocess.run(["qemu-img", "info", "-f", "vpc", vhd], check=True,
                      capture_output=True, text=True).stdout
assert f"({vdi_size} bytes)" in info, info
conv = os.path.join(work, "a-from-vhd.raw")
subprocess.run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", vhd, conv], check=True)
assert os.path.getsize(conv) >= vdi_size, os.path.getsize(conv)
assert sha(conv, vdi_size) == sha(out), "the VHD export is not the disk"
print(f"export vhd: {n} bytes, qemu-img reads the same disk", flush=True)

# 4. Import our VHD and one qemu-img made into fresh VDIs; export raw.
for name, image in [("ours", vhd), ("qemu-img", None)]:
    if image is None:
        image = os.path.join(work, "qemu.vhd")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc",
                        "-o", "subformat=dynamic,force_size=on", raw, image], check=True)
    b = new_vdi("images-" + name, vdi_size)
    status, body, secs = put(b, image, "vhd")
    assert status == 200, (name, status, body)
    back = os.path.join(work, name + ".raw")
    get(b, back, "raw")
    assert sha(back, raw_len) == sha(raw), name
    with open(back, "rb") as f:
        f.seek(raw_len)
        assert f.read().count(0) == vdi_size - raw_len, name
    print(f"import vhd ({name}): {os.path.getsize(image)} bytes in {secs:.1f} s, same disk", flush=True)

# 5. Refused: a snapshot is not written; a bad session is 401.
snap = x.VDI.snapshot(a, {})
status, body, _ = put(snap, raw, "raw")
assert status == 409, (status, body)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
c.request("GET", "/export_raw_vdi?session_id=OpaqueRef:nope&vdi=" + a)
r = c.getresponse()
assert r.status == 401, r.status
r.read()
print("refusals: snapshot 409, bad session 401", flush=True)
print("IMAGES OK", flush=True)
