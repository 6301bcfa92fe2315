# PyPI's unmodified XenAPI through netdom, on either side of a platform
# reboot (QEMU restarted on the same disk file).
#
#   python durable_state.py URL PASSWORD make NAME   # before the reboot
#   python durable_state.py URL PASSWORD check NAME  # after it
#
# make: a VM named NAME with a VIF on the management network, a 64 MiB VDI
# on the default SR (stordom's) and a VBD joining them; prints what it made.
# check: logs in again (sessions do not survive) and finds every record,
# with the SR's sizes counting the VDI.
import sys

import XenAPI

url, password, mode, name = sys.argv[1:5]


def say(text):
    print(f"DURABLE {text}", flush=True)


s = XenAPI.Session(url)
s.xenapi.login_with_password("root", password, "1.0", "durable-state-test")
x = s.xenapi
pool = x.pool.get_all()[0]
sr = x.pool.get_default_SR(pool)
size = 64 << 20

if mode == "make":
    vm = x.VM.create(
        {
            "name_label": name,
            "name_description": "kept across a platform reboot",
            "memory_static_max": "268435456",
            "memory_dynamic_max": "268435456",
            "memory_dynamic_min": "268435456",
            "memory_static_min": "268435456",
            "VCPUs_max": "1",
            "VCPUs_at_startup": "1",
        }
    )
    net = x.PIF.get_network(x.PIF.get_all()[0])
    x.VIF.create(
        {
            "VM": vm,
            "network": net,
            "device": "0",
            "MAC": "",
            "MTU": "1500",
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        }
    )
    vdi = x.VDI.create(
        {
            "name_label": f"{name}-disk",
            "name_description": "",
            "SR": sr,
            "virtual_size": str(size),
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
        }
    )
    x.VBD.create(
        {
            "VM": vm,
            "VDI": vdi,
            "userdevice": "0",
            "bootable": True,
            "mode": "RW",
            "type": "Disk",
            "unpluggable": True,
            "empty": False,
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        }
    )
    say(f"made vm {x.VM.get_uuid(vm)} vdi {x.VDI.get_uuid(vdi)}")
else:
    vms = x.VM.get_by_name_label(name)
    assert len(vms) == 1, f"VM {name}: {vms}"
    vm = vms[0]
    assert x.VM.get_power_state(vm) == "Halted", x.VM.get_power_state(vm)
    vifs = x.VM.get_VIFs(vm)
    assert len(vifs) == 1, vifs
    mac = x.VIF.get_MAC(vifs[0])
    vbds = x.VM.get_VBDs(vm)
    assert len(vbds) == 1, vbds
    vdi = x.VBD.get_VDI(vbds[0])
    assert x.VDI.get_name_label(vdi) == f"{name}-disk"
    assert int(x.VDI.get_virtual_size(vdi)) == size, x.VDI.get_virtual_size(vdi)
    assert x.VDI.get_SR(vdi) == sr
    # The SR itself agrees: a scan keeps the VDI (it is on stordom's SR).
    x.SR.scan(sr)
    assert not x.VDI.get_missing(vdi), "the SR lost the VDI"
    assert int(x.SR.get_virtual_allocation(sr)) >= size, x.SR.get_virtual_allocation(sr)
    assert int(x.SR.get_physical_size(sr)) > 0
    say(f"found vm {x.VM.get_uuid(vm)} vdi {x.VDI.get_uuid(vdi)} mac {mac}")
x.session.logout()
say("OK")
