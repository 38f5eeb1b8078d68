// A balancer in front of two backends, all in one process: the example of docs/api.md.
// Run from the repository's root after `npm ci`: node docs/examples/library.mjs
import { once } from 'node:events'
import { createBackend } from '@switchyard/backend'
import { createBalancer } from '@switchyard/balancer'

// Two backends on free ports of 127.0.0.1. A Backend is a node:http Server, returned not listening.
const backends = [createBackend({ id: 'a' }), createBackend({ id: 'b' })]
for (const backend of backends) await once(backend.listen(0, '127.0.0.1'), 'listening')
const upstreams = backends.map(b => ({ host: '127.0.0.1', port: b.address().port }))

const balancer = createBalancer({ upstreams })
balancer.on('health', change => console.log('health:', change.upstream.id, change.up ? 'up' : 'down'))
const { port } = await balancer.listen(0, '127.0.0.1') // resolves with the address; again for another listener

for (let i = 0; i < 4; i++) {
  const res = await fetch(`http://127.0.0.1:${port}/`)
  console.log(res.status, res.headers.get('x-served-by'), JSON.stringify(await res.text()))
}

// A reload keeps the upstreams it still names, with their state; here, only the first remains.
balancer.reload({ upstreams: [upstreams[0]], policy: 'least-requests' })
console.log('after reload:', balancer.pool.upstreams.map(u => u.id).join(', '))

await balancer.drain(30_000) // or close(): at once
for (const backend of backends) backend.close()
