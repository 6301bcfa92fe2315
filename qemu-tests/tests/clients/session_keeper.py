# PyPI's unmodified XenAPI through netdom: one session for the whole run.
# Logs in, creates a VM named by the first argument, then waits for a line
# on stdin (the test crashes netdom meanwhile) and goes on with the same
# session: retries until netdom is back, creates the second VM, checks the
# session is the one it logged in with, logs out.
#
# Usage: python session_keeper.py URL PASSWORD FIRST SECOND
import http.client
import sys
import time
import xmlrpc.client

import XenAPI

url, password, first, second = sys.argv[1:5]


def say(text):
    print(f"KEEPER {text}", flush=True)


def vm(name):
    return {
        "name_label": name,
        "name_description": "made through netdom",
        "memory_static_max": "268435456",
        "memory_dynamic_max": "268435456",
        "memory_dynamic_min": "268435456",
        "memory_static_min": "268435456",
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
    }


s = XenAPI.Session(url)
s.xenapi.login_with_password("root", password, "1.0", "netdom-restart-test")
session = s._session
s.xenapi.VM.create(vm(first))
say(f"created {first}")

sys.stdin.readline()
retries = 0
deadline = time.monotonic() + 180
while True:
    try:
        s.xenapi.VM.create(vm(second))
        break
    except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as e:
        # netdom is down or being rebuilt: the connection fails.
        retries += 1
        if time.monotonic() > deadline:
            say(f"gave up after {retries} retries: {e!r}")
            sys.exit(1)
        time.sleep(0.5)
say(f"created {second} after {retries} failed attempt(s)")
assert s._session == session, "the session changed"
names = sorted(r["name_label"] for r in s.xenapi.VM.get_all_records().values())
assert first in names and second in names, names
s.xenapi.session.logout()
say("OK")
