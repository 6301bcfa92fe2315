// Xen Orchestra's unmodified npm `xen-api` client through netdom: connects,
// runs its event loop, and reports each VM another client (PyPI XenAPI)
// creates, as its events arrive. It keeps one client object for the whole
// run, so it must ride out netdom being crashed and rebuilt.
//
// Usage: node event_watcher.mjs URL PASSWORD NODE_MODULES_DIR NAME...
// Prints "WATCHER connected", then "WATCHER saw NAME" for each NAME in
// order; exits 0 once all were seen, non-zero on a timeout.
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [url, password, modules, ...names] = process.argv.slice(2)
const { createClient } = await import(pathToFileURL(join(modules, 'xen-api', 'index.mjs')).href)

const say = text => console.log(`WATCHER ${text}`)
setTimeout(() => {
  say('timed out')
  process.exit(1)
}, 400_000)

// eventPollDelay: how long xen-api waits before retrying a failed
// event.from (its default is a minute).
const xapi = createClient({ url, auth: { user: 'root', password }, allowUnauthorized: true, eventPollDelay: 1000 })
xapi.on('eventFetchingError', error => say(`event.from failed: ${error?.code ?? error?.message}`))
await xapi.connect()
await xapi.objectsFetched
say(`connected (session ${xapi.sessionId !== undefined ? 'open' : 'missing'})`)

const seen = name => Object.values(xapi.objects.all).some(o => o.$type === 'VM' && o.name_label === name)
for (const name of names) {
  while (!seen(name)) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  say(`saw ${name}`)
}
await xapi.disconnect()
process.exit(0)
