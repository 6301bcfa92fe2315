// Drives xcp-sim with Xen Orchestra's unmodified npm `xen-api` client
// (JSON-RPC transport): its full connect() and event loop, an event made by
// another client reaching it, calls, async calls and error codes.
//
// Usage: node xen_api_client.mjs URL PASSWORD NODE_MODULES_DIR
// Exits non-zero on the first mismatch.
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [url, password, modules] = process.argv.slice(2)
const { createClient } = await import(pathToFileURL(join(modules, 'xen-api', 'index.mjs')).href)

function check(cond, what) {
  if (!cond) {
    console.error('MISMATCH:', what)
    process.exit(1)
  }
}

async function expectCode(code, promise) {
  try {
    await promise
  } catch (error) {
    check(error.code === code, `expected ${code}, got ${error.code} ${error.message}`)
    return error
  }
  check(false, `expected ${code}, call succeeded`)
}

async function waitFor(what, cond, ms = 20000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  check(false, `timed out waiting for ${what}`)
}

// A second, independent client speaking raw JSON-RPC 2.0.
let rawId = 0
async function raw(method, ...params) {
  const res = await fetch(new URL('/jsonrpc', url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', method, params, id: ++rawId }),
  })
  check(res.headers.get('content-type') === 'application/json', 'JSON-RPC content type')
  return res.json()
}

const timer = setTimeout(() => {
  console.error('MISMATCH: overall timeout')
  process.exit(1)
}, 90000)

const xapi = createClient({ url, auth: { user: 'root', password }, allowUnauthorized: true })
await xapi.connect()
check(xapi.status === 'connected', 'connected')
check(xapi.pool !== undefined && xapi.pool.$ref.startsWith('OpaqueRef:'), 'pool record')
await xapi.objectsFetched
const all = Object.values(xapi.objects.all)
for (const type of ['pool', 'host', 'host_metrics', 'VM', 'network', 'PIF', 'SR', 'PBD']) {
  check(all.some(o => o.$type === type), `initial fetch has a ${type}`)
}
const methods = await xapi.call('system.listMethods')
check(methods.includes('event.from') && methods.includes('VM.get_all_records'), 'listMethods')

// An event made by another client reaches this one.
const login = await raw('session.login_with_password', 'root', password, '1.0', 'other')
check(typeof login.result === 'string', 'second client login')
const other = login.result
const created = await raw('VM.create', other, {
  name_label: 'from-other-client',
  memory_static_max: 268435456,
  VCPUs_max: 1,
  VCPUs_at_startup: 1,
})
const vmRef = created.result
check(typeof vmRef === 'string' && vmRef.startsWith('OpaqueRef:'), 'VM.create over JSON-RPC')
await waitFor('add event for the new VM', () => xapi.objects.all[vmRef] !== undefined || xapi.getObject(vmRef, undefined) !== undefined)
await raw('VM.set_name_label', other, vmRef, 'renamed-by-other')
await waitFor('mod event for the new VM', () => xapi.getObject(vmRef, undefined)?.name_label === 'renamed-by-other')
await raw('VM.add_to_other_config', other, vmRef, 'k', 'v')
await waitFor('map change', () => xapi.getObject(vmRef, undefined)?.other_config?.k === 'v')

// Calls, async calls and error codes through xen-api.
const rec = await xapi.call('VM.get_record', vmRef)
check(rec.name_label === 'renamed-by-other' && rec.power_state === 'Halted', 'VM.get_record')
check(rec.memory_static_max === 268435456, 'int is a JSON number')
await expectCode('HANDLE_INVALID', xapi.call('VM.get_record', 'OpaqueRef:00000000-0000-0000-0000-000000000000'))
await expectCode('VM_BAD_POWER_STATE', xapi.call('VM.clean_shutdown', vmRef))
await expectCode('MAP_DUPLICATE_KEY', xapi.call('VM.add_to_other_config', vmRef, 'k', 'again'))
await expectCode('MESSAGE_METHOD_UNKNOWN', xapi.call('VM.no_such_message', vmRef))
await xapi.callAsync('VM.start', vmRef, false, false)
await waitFor('VM running via events', () => xapi.getObject(vmRef, undefined)?.power_state === 'Running')
const failed = await expectCode('VM_BAD_POWER_STATE', xapi.callAsync('VM.start', vmRef, false, false))
check(failed.params[0] === vmRef, 'async failure params')
// Snapshot the running VM and revert it once Halted, as Xen Orchestra does
// (Async.VM.snapshot without ignore_vdis, Async.VM.revert).
const snapRef = await xapi.callAsync('VM.snapshot', vmRef, 'xo-snap')
check(typeof snapRef === 'string' && snapRef.startsWith('OpaqueRef:'), 'Async.VM.snapshot result')
await waitFor('the snapshot through events', () => xapi.getObject(snapRef, undefined)?.snapshot_of === vmRef)
await waitFor('VM.snapshots through events', () => xapi.getObject(vmRef, undefined)?.snapshots?.includes(snapRef))
check(xapi.getObject(snapRef).is_a_snapshot === true, 'is_a_snapshot')
await expectCode('VM_BAD_POWER_STATE', xapi.callAsync('VM.revert', snapRef))
await xapi.call('VM.hard_shutdown', vmRef)
await xapi.callAsync('VM.revert', snapRef)
await waitFor('the VM names its snapshot as parent', () => xapi.getObject(vmRef, undefined)?.parent === snapRef)
await xapi.call('VM.destroy', snapRef)
await xapi.call('VM.destroy', vmRef)
await waitFor('del event', () => xapi.getObject(vmRef, undefined) === undefined)

// A bad session is SESSION_INVALID in JSON-RPC 2.0 error shape.
const bad = await raw('VM.get_all', 'OpaqueRef:bogus')
check(bad.error && bad.error.message === 'SESSION_INVALID' && Array.isArray(bad.error.data), 'SESSION_INVALID shape')
await raw('session.logout', other)
const gone = await raw('VM.get_all', other)
check(gone.error && gone.error.message === 'SESSION_INVALID', 'logged-out session')

await xapi.disconnect()
clearTimeout(timer)
console.log('xen_api_client.mjs: all scenarios passed')
process.exit(0)
