/**
 * The OpenAPI schema of `PeerAuthentication.spec` (types: `kube-types.ts`; checks and messages:
 * `kube-parse-peer-auth.ts`). CEL says what a schema cannot: `portLevelMtls` keys are ports
 * 1–65535 and need a selector.
 */
import { MTLS_MODES } from './kube-parse-peer-auth';
import { type Schema, s } from './crd-schema';
import { LIMITS, selector } from './crd-fields';

const mtls = (description: string): Schema =>
  s.object({ mode: s.enum(MTLS_MODES, { description: 'STRICT | PERMISSIVE | DISABLE | UNSET (inherit).' }) }, { description });

/** `PeerAuthentication.spec`. */
export const PEER_AUTHENTICATION_SPEC: Schema = s.object(
  {
    selector: selector('Omitted: the whole namespace (in the root namespace: the mesh).'),
    mtls: mtls('The mode of the selected workloads; omitted: UNSET.'),
    portLevelMtls: s.map(mtls('The mode of one app (container) port.'), {
      description: 'By port number (a quoted key such as "9090"); only with a selector.',
      maxProperties: LIMITS.ports,
      rules: [
        {
          rule: "self.all(k, k.matches('^[0-9]{1,5}$') && int(k) >= 1 && int(k) <= 65535)",
          message: 'the key must be a port number between 1 and 65535',
        },
      ],
    }),
  },
  {
    description: 'PeerAuthentication spec (docs/configuration.md, "PeerAuthentication").',
    rules: [
      {
        rule: '!has(self.portLevelMtls) || size(self.portLevelMtls) == 0 || (has(self.selector) && has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0)',
        message: 'portLevelMtls needs spec.selector (port-level settings apply to selected workloads only, as in Istio)',
        fieldPath: '.portLevelMtls',
      },
    ],
  },
);
