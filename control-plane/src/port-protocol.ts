/**
 * Which protocol a Service port declares (docs/configuration.md, "Service ports: HTTP, opaque TCP,
 * or detected"), and which Service owns each per-upstream local port in local mode. Pure.
 *
 * - `opaque`: TCP, never detected. `appProtocol` `tcp`, `tls`, `https`, `mysql`, `mongo`, `redis`,
 *   `smtp` or `nats`; or, without a recognised `appProtocol`, a port name that is one of those or
 *   starts with one and `-` (`tcp-db`, `mysql-primary`). Istio's convention for the names it
 *   treats as TCP, plus the server-speaks-first protocols users hit most (SMTP, NATS).
 * - `http`: `appProtocol` `http`, `http2`, `grpc`, `grpc-web`, `kubernetes.io/h2c` or
 *   `kubernetes.io/ws`, or a name `http`, `http2`, `grpc`, `grpc-web` (alone or with `-suffix`).
 *   Still detected (HTTP/1 or h2c); no per-upstream local port.
 * - `detect`: anything else. HTTP, TLS or opaque TCP is decided from the first bytes.
 *
 * `appProtocol` wins over the name when it is recognised, as in Istio; both are compared case-insensitively.
 */
import type { Service, ServicePort } from '@weft/api';

export type PortProtocol = 'opaque' | 'http' | 'detect';

const OPAQUE = ['tcp', 'tls', 'https', 'mysql', 'mongo', 'redis', 'smtp', 'nats'];
const HTTP = ['http', 'http2', 'grpc', 'grpc-web'];
const HTTP_APP_PROTOCOLS = [...HTTP, 'kubernetes.io/h2c', 'kubernetes.io/ws'];

export function portProtocol(port: Pick<ServicePort, 'name' | 'appProtocol'>): PortProtocol {
  const app = port.appProtocol?.toLowerCase();
  if (app !== undefined) {
    if (OPAQUE.includes(app)) return 'opaque';
    if (HTTP_APP_PROTOCOLS.includes(app)) return 'http';
  }
  const name = port.name?.toLowerCase() ?? '';
  const named = (p: string): boolean => name === p || name.startsWith(`${p}-`);
  if (OPAQUE.some(named)) return 'opaque';
  if (HTTP.some(named)) return 'http';
  return 'detect';
}

/** Sidecar and control-plane ports (SPEC.md, "Ports") that a per-upstream port must not take. */
export const RESERVED_PORTS = { from: 15000, to: 15021 } as const;
/** Local mode binds per-upstream ports as an unprivileged process: only from here up. */
export const FIRST_UNPRIVILEGED_PORT = 1024;

export interface LocalPortOwner {
  readonly service: Service;
  readonly port: ServicePort;
  readonly protocol: 'opaque' | 'detect';
}

export interface LocalPorts {
  /** Per port number, the Service port a client sidecar's `POD_IP:<port>` listener proxies to. */
  readonly owners: ReadonlyMap<number, LocalPortOwner>;
  /** One line per Service port left without a local port, and why. */
  readonly problems: readonly { readonly service: string; readonly message: string }[];
}

/**
 * Local mode's per-upstream ports: every TCP Service port not declared HTTP gets `POD_IP:<port>`
 * on each client sidecar. Two Services wanting one port: the oldest (creationTimestamp, then
 * registry order) wins; the others are reported. Ports below 1024 and 15000–15021 are reported
 * and skipped. `services` are in registry order.
 */
export function localPorts(services: readonly Service[]): LocalPorts {
  const order = new Map(services.map((s, i) => [s, i]));
  const age = (s: Service): number => {
    const t = s.meta.creationTimestamp ? Date.parse(s.meta.creationTimestamp) : NaN;
    return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t;
  };
  const sorted = [...services].sort((a, b) => age(a) - age(b) || order.get(a)! - order.get(b)!);
  const owners = new Map<number, LocalPortOwner>();
  const problems: { service: string; message: string }[] = [];
  for (const service of sorted) {
    const key = `${service.meta.namespace}/${service.meta.name}`;
    for (const port of service.ports) {
      const protocol = portProtocol(port);
      if (port.protocol !== 'TCP' || protocol === 'http') continue;
      const p = port.port;
      if (p < FIRST_UNPRIVILEGED_PORT || (p >= RESERVED_PORTS.from && p <= RESERVED_PORTS.to)) {
        problems.push({ service: key, message: `port ${p} (${protocol}) gets no local per-upstream port: local mode uses ports 1024-65535 outside ${RESERVED_PORTS.from}-${RESERVED_PORTS.to}` });
        continue;
      }
      const winner = owners.get(p);
      if (winner) {
        problems.push({ service: key, message: `port ${p} (${protocol}) conflicts with the older Service ${winner.service.meta.namespace}/${winner.service.meta.name}, which keeps the local per-upstream port ${p}` });
        continue;
      }
      owners.set(p, { service, port, protocol });
    }
  }
  return { owners, problems };
}
