// Xen Orchestra's New-VM sequence (xo-server's `createVm`: clone the
// template, drop its `disks` spec and provision, the set calls, a VIF at
// the first allowed device with an empty MAC, the boot check, start) sent
// by its unmodified npm `xen-api` client through netdom, with `callAsync`
// (Async.* and the task watched through event.from) where xo-server uses
// it. The template is a VM whose disk boots by itself (GRUB from the
// guest's disk), so the new VM's disks are the template's, cloned.
//
// Usage: node xo_create_vm.mjs URL PASSWORD NODE_MODULES_DIR TEMPLATE_UUID
// Prints "XO ..." lines and "XO OK" once the VM reported its address in
// VM_guest_metrics, xo-server's stats query of /rrd_updates gave the
// host's and the VM's figures, and the VM shut down cleanly; exits
// non-zero otherwise.
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [url, password, modules, templateUuid] = process.argv.slice(2)
const { createClient } = await import(pathToFileURL(join(modules, 'xen-api', 'index.mjs')).href)

const say = text => console.log(`XO ${text}`)
setTimeout(() => {
  say('timed out')
  process.exit(1)
}, 600_000)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const MIB = 1024 * 1024

const xapi = createClient({ url, auth: { user: 'root', password }, allowUnauthorized: true, eventPollDelay: 1000 })
await xapi.connect()
await xapi.objectsFetched
say('connected')

const template = await xapi.call('VM.get_by_uuid', templateUuid)
const pool = (await xapi.call('pool.get_all'))[0]
const host = await xapi.call('pool.get_master', pool)
const network = (await xapi.call('network.get_all'))[0]

// _cloneVm
const vm = await xapi.callAsync('VM.clone', template, 'xo-vm')
say(`cloned ${vm}`)
// createVm: the template's disks spec is dropped, then provision.
await xapi.call('VM.remove_from_other_config', vm, 'disks')
await xapi.callAsync('VM.provision', vm)
if (await xapi.call('VM.get_is_a_template', vm)) throw new Error('still a template after provision')
// _editVm
await xapi.call('VM.set_name_label', vm, 'xo-vm')
await xapi.call('VM.set_name_description', vm, 'made as xo-server makes a VM')
await xapi.call('VM.set_memory_limits', vm, 256 * MIB, 256 * MIB, 256 * MIB, 256 * MIB)
await xapi.call('VM.set_VCPUs_max', vm, 1)
await xapi.call('VM.set_VCPUs_at_startup', vm, 1)
// _createVif: the first allowed device, an empty MAC.
const [device] = await xapi.call('VM.get_allowed_VIF_devices', vm)
const vif = await xapi.call('VIF.create', {
  VM: vm,
  network,
  device,
  MAC: '',
  MTU: 1500,
  other_config: {},
  qos_algorithm_type: '',
  qos_algorithm_params: {},
  locking_mode: 'network_default',
})
const mac = await xapi.call('VIF.get_MAC', vif)
say(`VIF ${device} with MAC ${mac}`)
await xapi.call('VM.assert_can_boot_here', vm, host)
await xapi.callAsync('VM.start', vm, false, false)
say(`started: ${await xapi.call('VM.get_power_state', vm)}`)

// The guest's agent reports its address; xo-web shows VM_guest_metrics.
let ip
for (let i = 0; i < 400 && ip === undefined; i++) {
  const gm = await xapi.call('VM.get_guest_metrics', vm)
  if (gm !== 'OpaqueRef:NULL') {
    ip = (await xapi.call('VM_guest_metrics.get_networks', gm))['0/ip']
  }
  if (ip === undefined) await sleep(1000)
}
if (ip === undefined) throw new Error('no address in VM_guest_metrics')
say(`booted from its cloned disk: address ${ip}`)
// xo-server's stats (xapi-stats.mjs): /rrd_updates as JSON through
// getResource, the host's and the VM's figures. A rate needs two samples
// 5 s apart: asked again until the newest row has them.
const vmUuid = await xapi.call('VM.get_uuid', vm)
const hostUuid = await xapi.call('host.get_uuid', host)
let figures
for (let i = 0; i < 30 && figures === undefined; i++) {
  const response = await xapi.getResource('/rrd_updates', {
    query: { cf: 'AVERAGE', host: 'true', interval: 5, json: 'true', start: Math.floor(Date.now() / 1000) - 300 },
  })
  const rrd = JSON.parse(await response.body.text())
  const newest = rrd.data[0]?.values ?? []
  const value = (owner, uuid, name) => {
    const at = rrd.meta.legend.indexOf(`AVERAGE:${owner}:${uuid}:${name}`)
    return at < 0 ? NaN : Number(newest[at])
  }
  const f = {
    hostCpu: value('host', hostUuid, 'cpu_avg'),
    hostCpu0: value('host', hostUuid, 'cpu0'),
    hostMemoryKib: value('host', hostUuid, 'memory_total_kib'),
    vmCpu: value('vm', vmUuid, 'cpu0'),
    vmMemory: value('vm', vmUuid, 'memory'),
  }
  if (Object.values(f).every(Number.isFinite)) figures = f
  else await sleep(2000)
}
if (figures === undefined) throw new Error('/rrd_updates never had the host and VM figures')
say(`/rrd_updates: ${JSON.stringify(figures)}`)
if (!(figures.hostCpu > 0 && figures.hostCpu <= 1 && figures.hostCpu0 > 0 && figures.hostCpu0 <= 1))
  throw new Error('the host was busy for no fraction of its CPU')
if (!(figures.vmCpu > 0 && figures.vmCpu <= 1)) throw new Error('the VM used no CPU')
// xapi-rrd writes `%0.5g`: 256 MiB and the domain's own pages read 2.6844e+08.
if (Math.abs(figures.vmMemory - 256 * MIB) > 2 * MIB) throw new Error(`the VM's memory is ${figures.vmMemory}`)
if (!(figures.hostMemoryKib > 256 * 1024)) throw new Error('the host has no memory')
// The cache xen-api keeps from event.from saw the VM running.
const cached = Object.values(xapi.objects.all).find(o => o.$type === 'VM' && o.name_label === 'xo-vm')
say(`xen-api's object cache: power_state ${cached?.power_state}`)
if (cached?.power_state !== 'Running') throw new Error('the event cache did not see it running')
await xapi.callAsync('VM.clean_shutdown', vm)
say(`shut down: ${await xapi.call('VM.get_power_state', vm)}`)
await xapi.disconnect()
say('OK')
process.exit(0)
