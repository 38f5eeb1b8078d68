import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { Sticky } from '../../src/select/sticky.js'

const withCookie = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage

t.test('a signed cookie names the upstream; a tampered one is ignored', async t => {
  const sticky = new Sticky({ cookie: 'sy', secret: 'k' })
  const set = sticky.setCookie('127.0.0.1:5000', false)
  t.match(set, /^sy=[\w-]+\.[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/, 'a session cookie: Path, HttpOnly, SameSite, no Max-Age')
  t.match(sticky.setCookie('[::1]:5000', true), /; Secure$/, 'Secure over https')
  const value = (set.split(';')[0] as string).slice('sy='.length)
  t.equal(sticky.idFrom(withCookie(`other=1; sy=${value}`)), '127.0.0.1:5000', 'read back among other cookies')
  const [id, mac] = value.split('.') as [string, string]
  const flipped = `${id}.${mac[0] === 'A' ? 'B' : 'A'}${mac.slice(1)}`
  t.equal(sticky.idFrom(withCookie(`sy=${flipped}`)), undefined, 'a changed MAC is ignored')
  const forged = `${Buffer.from('10.0.0.9:80').toString('base64url')}.${mac}`
  t.equal(sticky.idFrom(withCookie(`sy=${forged}`)), undefined, 'another upstream with the old MAC is ignored')
  t.equal(sticky.idFrom(withCookie(`sy=${id}.`)), undefined, 'a missing MAC is ignored')
  t.equal(sticky.idFrom(withCookie('sy=nodot')), undefined, 'a value without a dot is ignored')
  t.equal(sticky.idFrom(withCookie()), undefined, 'no cookie')
  const other = new Sticky({ cookie: 'sy', secret: Sticky.randomSecret() })
  t.equal(other.idFrom(withCookie(`sy=${value}`)), undefined, 'another secret does not accept it')
})
