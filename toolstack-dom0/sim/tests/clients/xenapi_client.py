#!/usr/bin/env python3
"""Drives xcp-sim with PyPI's unmodified XenAPI (XML-RPC) client.

Usage: xenapi_client.py URL PASSWORD
Exits non-zero on the first mismatch.
"""
import sys
import time
import xmlrpc.client

import XenAPI

URL, PW = sys.argv[1], sys.argv[2]
CLASSES = ["pool", "host", "host_metrics", "VM", "VM_metrics", "VM_guest_metrics",
           "VBD", "VDI", "SR", "PBD", "VIF", "network", "PIF", "task", "console"]


def check(cond, what):
    if not cond:
        print("MISMATCH:", what, file=sys.stderr)
        sys.exit(1)


def expect_failure(code, fn, *args):
    try:
        fn(*args)
    except XenAPI.Failure as f:
        check(f.details[0] == code, f"expected {code}, got {f.details}")
        return f.details
    check(False, f"expected {code}, call succeeded")


def raw(method, *args):
    proxy = xmlrpc.client.ServerProxy(URL)
    return getattr(proxy, method)(*args)


bad = XenAPI.Session(URL)
expect_failure("SESSION_AUTHENTICATION_FAILED", bad.xenapi.login_with_password, "root", "wrong", "1.0", "t")

s = XenAPI.Session(URL)
s.xenapi.login_with_password("root", PW, "1.0", "xcp-rs-test")
x = s.xenapi
sid = s._session

# List and read every class.
for cls in CLASSES:
    api = getattr(x, cls)
    refs = api.get_all()
    recs = api.get_all_records()
    check(sorted(refs) == sorted(recs.keys()), f"{cls}: get_all vs get_all_records")
    for r in refs:
        rec = api.get_record(r)
        check(rec == recs[r], f"{cls}.get_record({r})")
        if "uuid" in rec:
            check(api.get_by_uuid(rec["uuid"]) == r, f"{cls}.get_by_uuid")
me = x.session.get_record(sid)
check(me["auth_user_name"] == "root" and me["this_host"] == x.host.get_all()[0], "session record")
check(x.session.get_by_uuid(me["uuid"]) == sid, "session.get_by_uuid")
for cls in ["pool", "host", "host_metrics", "network", "PIF", "SR", "PBD"]:
    check(len(getattr(x, cls).get_all()) == 1, f"fresh host has one {cls}")
host = x.host.get_all()[0]
check(x.host.get_API_version_major(host) == "2", "API version travels as a string")
methods = x.system.listMethods()
for m in ["VM.get_all_records", "Async.VM.start", "event.from", "VM.add_to_other_config"]:
    check(m in methods, f"listMethods has {m}")
check(raw("system.listMethods")["Value"] == methods, "listMethods without a session")

batch = getattr(x.event, "from")(["vm", "vbd", "vif", "vdi"], "", 0.0)
token = batch["token"]

# Create a VM with a VDI, VBD and VIF.
vm = x.VM.create({
    "name_label": "test-vm", "name_description": "", "user_version": "1", "is_a_template": False,
    "memory_static_max": "268435456", "memory_dynamic_max": "268435456",
    "memory_dynamic_min": "268435456", "memory_static_min": "134217728",
    "VCPUs_max": "2", "VCPUs_at_startup": "2", "VCPUs_params": {},
    "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
    "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "/boot/vmlinuz",
    "PV_ramdisk": "", "PV_args": "console=hvc0", "PV_bootloader_args": "", "PV_legacy_args": "",
    "HVM_boot_policy": "", "HVM_boot_params": {}, "platform": {}, "PCI_bus": "",
    "other_config": {}, "recommendations": "",
})
sr = x.SR.get_all()[0]
vdi = x.VDI.create({"name_label": "disk0", "name_description": "", "SR": sr,
                    "virtual_size": str(8 << 30), "type": "user", "sharable": False,
                    "read_only": False, "other_config": {}})
vbd = x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                    "type": "Disk", "empty": False, "other_config": {},
                    "qos_algorithm_type": "", "qos_algorithm_params": {}})
net = x.network.get_all()[0]
vif = x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "00:16:3e:12:34:56",
                    "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                    "qos_algorithm_params": {}})
check(x.VM.get_VBDs(vm) == [vbd], "VM.VBDs")
check(x.VM.get_VIFs(vm) == [vif], "VM.VIFs")
check(x.VDI.get_VBDs(vdi) == [vbd], "VDI.VBDs")
check(vdi in x.SR.get_VDIs(sr), "SR.VDIs")
check(vif in x.network.get_VIFs(net), "network.VIFs")
check(x.VM.get_power_state(vm) == "Halted", "new VM is Halted")
check(x.VM.get_VCPUs_max(vm) == "2", "VCPUs_max")

# Set fields, maps and sets.
x.VM.set_name_label(vm, "renamed")
check(x.VM.get_name_label(vm) == "renamed", "set_name_label")
check(x.VM.get_by_name_label("renamed") == [vm], "get_by_name_label")
x.VM.add_to_other_config(vm, "owner", "ci")
details = expect_failure("MAP_DUPLICATE_KEY", x.VM.add_to_other_config, vm, "owner", "again")
check(details[1:] == ["VM", "other_config", vm, "owner"], "MAP_DUPLICATE_KEY params")
x.VM.set_other_config(vm, {"a": "1", "owner": "ci"})
x.VM.remove_from_other_config(vm, "a")
check(x.VM.get_other_config(vm) == {"owner": "ci"}, "other_config")
x.VM.add_tags(vm, "blue")
x.VM.add_tags(vm, "green")
x.VM.remove_tags(vm, "blue")
check(x.VM.get_tags(vm) == ["green"], "tags")
expect_failure("FIELD_TYPE_ERROR", x.VM.set_VCPUs_max, vm, "lots")
expect_failure("MESSAGE_PARAMETER_COUNT_MISMATCH", x.VM.get_record)
expect_failure("MESSAGE_METHOD_UNKNOWN", x.VM.frobnicate, vm)

# Async start with task polling.
task = x.Async.VM.start(vm, False, False)
check(task.startswith("OpaqueRef:"), "Async returns a task ref")
for _ in range(200):
    status = x.task.get_status(task)
    if status != "pending":
        break
    time.sleep(0.05)
check(status == "success", f"task status {status}")
check(float(x.task.get_progress(task)) == 1.0, "task progress")
check(x.task.get_error_info(task) == [], "task error_info")
check(x.VM.get_power_state(vm) == "Running", "VM running")
check(int(x.VM.get_domid(vm)) > 0, "domid")
check("pause" in x.VM.get_allowed_operations(vm), "allowed_operations")
check(x.VBD.get_currently_attached(vbd) is True, "VBD attached")
details = expect_failure("VM_BAD_POWER_STATE", x.VM.start, vm, False, False)
check(details[1:] == [vm, "halted", "running"], "VM_BAD_POWER_STATE params")
expect_failure("VM_BAD_POWER_STATE", x.VM.destroy, vm)
x.VM.pause(vm)
expect_failure("VM_BAD_POWER_STATE", x.VM.pause, vm)
x.VM.unpause(vm)
x.VM.clean_reboot(vm)
check(x.VM.get_power_state(vm) == "Running", "running after reboot")

# Failed async task carries error_info.
t2 = x.Async.VM.start(vm, False, False)
for _ in range(200):
    if x.task.get_status(t2) != "pending":
        break
    time.sleep(0.05)
check(x.task.get_status(t2) == "failure", "failed task")
check(x.task.get_error_info(t2)[0] == "VM_BAD_POWER_STATE", "task error_info code")

# event.from sees each change exactly once.
batch = getattr(x.event, "from")(["vm", "vbd", "vif", "vdi"], token, 1.0)
evs = batch["events"]
adds = {(e["class"], e["ref"]) for e in evs if e["operation"] == "add"}
for cls, ref in [("vm", vm), ("vdi", vdi), ("vbd", vbd), ("vif", vif)]:
    check((cls, ref) in adds, f"event add {cls}")
ids = [int(e["id"]) for e in evs]
check(len(ids) == len(set(ids)), "no duplicate events")
check(any(e["operation"] == "mod" and e["ref"] == vm and e["snapshot"]["name_label"] == "renamed"
          for e in evs), "mod event with snapshot")
again = getattr(x.event, "from")(["vm", "vbd", "vif", "vdi"], batch["token"], 0.0)
check(again["events"] == [], "no event seen twice")
x.VM.set_name_description(vm, "one more")
nxt = getattr(x.event, "from")(["vm"], batch["token"], 5.0)
check([e["operation"] for e in nxt["events"]] == ["mod"], "exactly the new change")

# Legacy events: register / next / unregister.
x.event.register(["vm"])
x.VM.set_name_description(vm, "legacy")
legacy = x.event.next()
check(any(e["ref"] == vm and e["operation"] == "mod" for e in legacy), "event.next sees the change")
x.event.unregister(["vm"])
expect_failure("SESSION_NOT_REGISTERED", x.event.next)
check(int(x.event.get_current_id()) >= max(ids), "event.get_current_id")

# Bad handles, bad sessions.
expect_failure("HANDLE_INVALID", x.VM.get_record, "OpaqueRef:00000000-0000-0000-0000-000000000000")
expect_failure("HANDLE_INVALID", x.VBD.get_VM, "OpaqueRef:NULL")
r = raw("VM.get_all", "OpaqueRef:bogus")
check(r["Status"] == "Failure" and r["ErrorDescription"][0] == "SESSION_INVALID", "bad session")

# Snapshot a running VM (ignore_vdis left out, as XenAPI.py callers do),
# then revert it once Halted.
snap = x.VM.snapshot(vm, "snap")
check(x.VM.get_is_a_snapshot(snap) is True, "is_a_snapshot")
check(x.VM.get_snapshot_of(snap) == vm, "snapshot_of")
check(x.VM.get_snapshots(vm) == [snap], "VM.snapshots")
check(x.VM.get_power_state(snap) == "Halted", "a snapshot is Halted")
check(sorted(x.VM.get_allowed_operations(snap)) == ["clone", "copy", "destroy", "revert"],
      "a snapshot's allowed_operations")
snap_vdi = x.VBD.get_VDI(x.VM.get_VBDs(snap)[0])
check(x.VDI.get_snapshot_of(snap_vdi) == vdi, "the disk's snapshot")
details = expect_failure("VM_BAD_POWER_STATE", x.VM.revert, snap)
check(details[1:] == [vm, "halted", "running"], "revert needs a Halted VM")
expect_failure("VM_IS_SNAPSHOT", x.VM.start, snap, False, False)
x.VM.hard_shutdown(vm)
check(x.VM.get_power_state(vm) == "Halted", "halted")
x.VM.revert(snap)
vdi = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
check(x.VDI.get_snapshot_of(snap_vdi) == vdi, "the reverted disk is a clone in the same tree")
x.VM.destroy(vm)
check(vm not in x.VM.get_all(), "VM destroyed")
check(vbd not in x.VBD.get_all() and vif not in x.VIF.get_all(), "VBD/VIF destroyed with VM")
check(vdi in x.VDI.get_all(), "VDI kept")
check(x.VM.get_snapshot_of(snap) == vm, "a destroyed VM's snapshot still names it")
x.VM.destroy(snap)
check(snap_vdi in x.VDI.get_all(), "the snapshot's VDI kept")

s.xenapi.session.logout()
r = raw("VM.get_all", sid)
check(r["Status"] == "Failure" and r["ErrorDescription"] == ["SESSION_INVALID", sid], "logged out")
print("xenapi_client.py: all scenarios passed")
