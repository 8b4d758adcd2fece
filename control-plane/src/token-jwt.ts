/**
 * Service-account tokens in local mode: compact JWTs (RFC 7519) signed ES256 with the control
 * plane's own key, shaped like Kubernetes' projected tokens (`sub:
 * system:serviceaccount:<ns>:<sa>`, `aud: ["weft"]`, `exp`, `iss`). Cluster mode validates real
 * Kubernetes tokens with TokenReview instead (`token-review.ts`).
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { fail, ok, type Result } from '@weft/api';

/** The issuer Weft's local-mode tokens carry. */
export const LOCAL_TOKEN_ISSUER = 'weft-control-plane';
export const TOKEN_AUDIENCE = 'weft';

export interface TokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: readonly string[];
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly 'kubernetes.io': { readonly namespace: string; readonly serviceaccount: { readonly name: string } };
}

/** The proven service account. */
export interface TokenIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** A signed token for `namespace/serviceAccount`, valid from `nowMs` for `ttlMs`. */
export function signToken(key: KeyObject, namespace: string, serviceAccount: string, nowMs: number, ttlMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const claims: TokenClaims = {
    iss: LOCAL_TOKEN_ISSUER,
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    aud: [TOKEN_AUDIENCE],
    iat,
    nbf: iat - 60,
    exp: iat + Math.floor(ttlMs / 1000),
    'kubernetes.io': { namespace, serviceaccount: { name: serviceAccount } },
  };
  const head = `${b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${head}.${b64url(sign('sha256', Buffer.from(head), { key, dsaEncoding: 'ieee-p1363' }))}`;
}

/** Checks signature (ES256 only), issuer, audience `weft`, expiry (60 s leeway) and the subject's shape. */
export function verifyToken(key: KeyObject, token: string, nowMs: number): Result<TokenIdentity> {
  const parts = token.split('.');
  if (parts.length !== 3) return fail('the token is not a compact JWT');
  let header: { alg?: unknown };
  let claims: Partial<TokenClaims>;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return fail('the token does not decode');
  }
  if (header.alg !== 'ES256') return fail(`token algorithm ${String(header.alg)} is not accepted (want ES256)`);
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const signed = verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2]!, 'base64url'));
  if (!signed) return fail('the token signature does not verify');
  if (claims.iss !== LOCAL_TOKEN_ISSUER) return fail(`token issuer "${String(claims.iss)}" is not trusted`);
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(TOKEN_AUDIENCE)) return fail(`token audience ${JSON.stringify(claims.aud)} does not include "${TOKEN_AUDIENCE}"`);
  const now = nowMs / 1000;
  if (typeof claims.exp !== 'number' || claims.exp + 60 < now) return fail('the token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf - 60 > now) return fail('the token is not valid yet');
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(String(claims.sub));
  if (!m) return fail(`token subject "${String(claims.sub)}" is not a service account`);
  return ok({ namespace: m[1]!, serviceAccount: m[2]!, expiresAt: claims.exp });
}
