# `cargo xtask bench vms`'s XenAPI client (after common.rs's
# PY_CLIENT_PRELUDE): a tiny PVH template, VM.clone + VM.provision N times,
# Async.VM.start of all N at once (one thread and session per VM), every
# VM Running, then Async.VM.clean_shutdown of all N at once, every VM
# Halted. While the starts run, a bystander session calls
# host.get_servertime in a loop ("T probe <rtt>"). Times are host seconds on the serial log's clock
# (time.time() - epoch). One event.from watcher (its own session) sees
# the power states and the tasks end: what a client that waits on events
# sees. Prints one "T ..." line per fact, for the bench to read.
import threading

url, pw, n, mib, args, epoch = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
now = lambda: time.time() - epoch
lock = threading.Lock()

def out(*words):
    with lock:
        print(*words, flush=True)

s = login(url, pw, "bench-vms")
x = s.xenapi
tmpl = x.VM.create({
    "name_label": "bench-tiny", "domain_type": "pvh",
    "memory_static_max": str(mib << 20), "memory_dynamic_max": str(mib << 20),
    "memory_dynamic_min": str(mib << 20), "VCPUs_max": "1", "VCPUs_at_startup": "1",
    "PV_kernel": "/boot/guest/tinyvm.elf", "PV_ramdisk": "", "PV_args": args,
    "actions_after_crash": "destroy", "actions_after_reboot": "destroy",
    "actions_after_shutdown": "destroy",
})
x.VM.set_is_a_template(tmpl, True)
t = now()
vms = []
for i in range(n):
    vm = x.VM.clone(tmpl, "bench-vm%02d" % i)
    x.VM.provision(vm)
    vms.append(vm)
out("T clones", n, "%.3f" % (now() - t))
names = {vm: "bench-vm%02d" % i for i, vm in enumerate(vms)}

# The watcher: the first instant each VM is seen Running after its start
# call, and Halted after its shutdown call; each task's end.
phase = {}          # vm -> "start" | "stop"
seen = {}           # (vm, state) -> time
tasks = {}          # task ref -> (vm, op)
task_end = {}       # task ref -> (time, status)
stop = threading.Event()

def watch():
    w = login(url, pw, "bench-vms-watch")
    token = ""
    while not stop.is_set():
        try:
            r = getattr(w.xenapi.event, "from")(["vm", "task"], token, 5.0)
        except XenAPI.Failure as e:
            if e.details[:1] != ["EVENTS_LOST"]:
                raise
            # The window moved past our token (50 VMs' and tasks' changes
            # at once): re-read everything (the empty token's snapshot);
            # what changed meanwhile is seen late, at this instant.
            out("T events-lost")
            token = ""
            continue
        t = now()
        token = r["token"]
        for ev in r["events"]:
            snap = ev.get("snapshot") or {}
            ref = ev["ref"]
            with lock:
                if ev["class"] == "vm" and ref in phase:
                    st = snap.get("power_state")
                    want = "Running" if phase[ref] == "start" else "Halted"
                    if st == want and (ref, want) not in seen:
                        seen[(ref, want)] = t
                elif ev["class"] == "task" and ref in tasks and ref not in task_end:
                    status = snap.get("status")
                    if status and status != "pending":
                        task_end[ref] = (t, status)
    w.xenapi.session.logout()

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
time.sleep(2)

def wait_all(state, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        with lock:
            if all((vm, state) in seen for vm in vms):
                return True
        time.sleep(0.2)
    return False

def probe(until):
    """Another client's wait: host.get_servertime round trips."""
    p = login(url, pw, "bench-vms-probe")
    host = p.xenapi.host.get_all()[0]
    while not until.is_set():
        t0 = time.monotonic()
        p.xenapi.host.get_servertime(host)
        out("T probe", "%.4f" % (time.monotonic() - t0))
        time.sleep(0.01)
    p.xenapi.session.logout()

def fire(op, state):
    """One thread and session per VM, released together: the Async call."""
    # Fresh sessions: a connection left idle while the guests boot may be
    # gone (QEMU's user network resets it).
    sessions = [login(url, pw, "bench-vms-%s-%d" % (op, i)) for i in range(n)]
    go = threading.Barrier(n)
    calls = {}
    def one(i):
        vm, sx = vms[i], sessions[i].xenapi
        go.wait()
        with lock:
            phase[vm] = "start" if state == "Running" else "stop"
        t0 = now()
        try:
            task = (sx.Async.VM.start(vm, False, False) if state == "Running"
                    else sx.Async.VM.clean_shutdown(vm))
        except Exception as e:
            out("T failed", op, names[vm], str(e).replace("\n", " "))
            return
        t1 = now()
        with lock:
            tasks[task] = (vm, op)
            calls[vm] = (t0, t1, task)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    probe_done = threading.Event()
    prober = threading.Thread(target=probe, args=(probe_done,), daemon=True)
    if state == "Running":
        prober.start()
    t = now()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = wait_all(state, 1800 if state == "Running" else 600)
    t_all = now()
    probe_done.set()
    if state == "Running":
        prober.join(30)
    x = sessions[0].xenapi
    if not ok and state == "Halted":
        # A guest that never acknowledged: hard shutdown, and say so.
        for vm in vms:
            if (vm, "Halted") not in seen and x.VM.get_power_state(vm) != "Halted":
                out("T hard", names[vm])
                x.VM.hard_shutdown(vm)
    # Tasks: the watcher saw most ends; ask for the rest.
    for vm, (t0, t1, task) in calls.items():
        if task not in task_end:
            status = x.task.get_status(task)
            with lock:
                task_end.setdefault(task, (now(), status))
    for vm, (t0, t1, task) in sorted(calls.items(), key=lambda c: names[c[0]]):
        te, status = task_end[task]
        if status != "success":
            out("T task-failed", op, names[vm], status,
                str(x.task.get_error_info(task)).replace("\n", " "))
        reached = seen.get((vm, state))
        out("T call", op, names[vm], "%.3f %.3f %s %.3f %s" % (
            t0, t1, "%.3f" % reached if reached else "-", te, status))
    out("T phase", op, "%.3f %.3f %s" % (t, t_all, "ok" if ok else "timeout"))
    for sx in sessions:
        sx.xenapi.session.logout()
    return ok

ok = fire("start", "Running")
s = login(url, pw, "bench-vms")
x = s.xenapi
for vm in vms:
    out("T domid", names[vm], x.VM.get_domid(vm))
out("ALL-RUNNING" if ok else "NOT-ALL-RUNNING")
# The bench waits for every guest's first line on the serial log, asks
# dom0 for its mem line, then says go.
sys.stdin.readline()
ok = fire("shutdown", "Halted") and ok
s = login(url, pw, "bench-vms")
stop.set()
watcher.join(10)
s.xenapi.session.logout()
print("CLIENT DONE" if ok else "CLIENT INCOMPLETE", flush=True)
