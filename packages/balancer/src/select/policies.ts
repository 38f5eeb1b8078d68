// Every balancing policy by name: the one place that makes a policy from the configuration.
import type { HashKey, PolicyName } from '../options.js'
import { First } from './first.js'
import { HashPolicy } from './hash.js'
import { LeastRequests } from './least-requests.js'
import type { Policy } from './policy.js'
import { RandomTwo } from './random-two.js'
import { RoundRobin } from './round-robin.js'

/** Makes the policy `name`; `hashKey` is used by `hash` only. */
export function createPolicy(name: PolicyName, hashKey: HashKey = { kind: 'ip' }): Policy {
  switch (name) {
    case 'least-requests':
      return new LeastRequests()
    case 'random-two':
      return new RandomTwo()
    case 'hash':
      return new HashPolicy(hashKey, new RoundRobin())
    case 'first':
      return new First()
    default:
      return new RoundRobin()
  }
}
