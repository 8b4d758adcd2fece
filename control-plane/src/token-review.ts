/**
 * Cluster mode's TokenValidator: asks the Kubernetes API who a service-account token proves
 * (`TokenReview`, audience `weft`), as Istio's CA does. The API server checks the signature, the
 * expiry, the audience and that the pod and service account still exist (a bound token dies with
 * its pod). The answer is cached briefly per token (default 30 s, never past the token's expiry),
 * so a sidecar's retries do not each cost an API call.
 */
import { createHash } from 'node:crypto';
import { fail, ok, type Result } from '@weft/api';
import type { KubeClient } from './kube-client';
import type { TokenIdentity } from './token-jwt';
import type { TokenValidator } from './token-validator';

const SA_PREFIX = 'system:serviceaccount:';

export class TokenReviewValidator implements TokenValidator {
  private readonly cache = new Map<string, { until: number; result: Result<TokenIdentity> }>();

  constructor(
    private readonly client: KubeClient,
    private readonly audience = 'weft',
    private readonly cacheMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  async validate(token: string): Promise<Result<TokenIdentity>> {
    const id = createHash('sha256').update(token).digest('base64url');
    const hit = this.cache.get(id);
    if (hit && hit.until > this.now()) return hit.result;
    const result = await this.review(token);
    if (this.cache.size > 10_000) this.cache.clear();
    const until = result.ok ? Math.min(this.now() + this.cacheMs, result.value.expiresAt * 1000) : this.now() + 1_000;
    this.cache.set(id, { until, result });
    return result;
  }

  private async review(token: string): Promise<Result<TokenIdentity>> {
    let answer: { status?: { authenticated?: boolean; error?: string; user?: { username?: string; extra?: Record<string, string[]> }; audiences?: string[] } };
    try {
      answer = await this.client.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } },
      });
    } catch (e) {
      return fail(`the Kubernetes API could not review the token: ${(e as Error).message}`);
    }
    const s = answer.status ?? {};
    if (!s.authenticated) return fail(`the token is not valid for audience "${this.audience}": ${s.error || 'not authenticated'}`);
    if (s.audiences && !s.audiences.includes(this.audience)) return fail(`the token is not for audience "${this.audience}"`);
    const user = s.user?.username ?? '';
    if (!user.startsWith(SA_PREFIX)) return fail(`the token belongs to ${user || 'nobody'}, not a service account`);
    const [namespace, serviceAccount] = user.slice(SA_PREFIX.length).split(':');
    if (!namespace || !serviceAccount) return fail(`unexpected service-account user name "${user}"`);
    return ok({ namespace, serviceAccount, expiresAt: tokenExpiry(token) ?? Math.floor((this.now() + this.cacheMs) / 1000) });
  }
}

/** The `exp` claim of a JWT, unverified (the API server verified it): bounds the cache. */
function tokenExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp : undefined;
  } catch {
    return undefined;
  }
}
