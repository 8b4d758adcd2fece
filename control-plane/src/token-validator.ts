/**
 * Who a bearer token proves the caller to be. Local mode: `LocalTokenValidator` checks tokens
 * the control plane signed itself (`token-jwt.ts`). Cluster mode: a validator that asks the
 * Kubernetes API (`TokenReview`, audience `weft`: `token-review.ts`), behind this interface.
 */
import type { KeyObject } from 'node:crypto';
import type { Result } from '@weft/api';
import { verifyToken, type TokenIdentity } from './token-jwt';

export interface TokenValidator {
  /** Resolves to the proven service account, or the reason the token is refused. Never rejects. */
  validate(token: string): Promise<Result<TokenIdentity>>;
}

export class LocalTokenValidator implements TokenValidator {
  constructor(private readonly key: KeyObject, private readonly now: () => number = Date.now) {}

  validate(token: string): Promise<Result<TokenIdentity>> {
    return Promise.resolve(verifyToken(this.key, token, this.now()));
  }
}
