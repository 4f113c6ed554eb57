// Configurations that are valid but probably not what the operator meant: `postern check`
// prints them (and still exits 0); `run` logs them at start. The routes' own warnings
// (shadowed routes, unreached pools) are route/warnings.ts's.
import type { ConfigProblem } from './errors.js';
import type { Config } from './types.js';

export function configWarnings(c: Config): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  c.listeners.forEach((l, i) => {
    // Before xclient_from existed, trusted_proxies also granted XCLIENT: a config written
    // then for nginx's mail proxy or another Postern upstream would now have that upstream
    // refused (550 5.7.0), and one written for a balancer was open to its clients.
    if (l.trusted_proxies.length > 0 && l.xclient_from.length === 0) {
      out.push({
        path: `listeners[${i}].trusted_proxies`,
        message:
          l.proxy_protocol === 'on'
            ? 'grants the PROXY header only; XCLIENT is no longer offered to these peers (nor to the clients behind them). If an upstream sends XCLIENT (nginx mail proxy, another Postern), list it in xclient_from'
            : 'has no effect with proxy_protocol: off (it grants the PROXY header only); peers that send XCLIENT (nginx mail proxy, another Postern) belong in xclient_from',
      });
    }
  });
  return out;
}
