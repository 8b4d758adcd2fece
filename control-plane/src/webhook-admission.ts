/**
 * The admission webhooks' logic, without HTTP: an `AdmissionReview` (admission.k8s.io/v1, as the
 * API server sends it) in, the `AdmissionReview` to answer out. webhook-server.ts carries it over
 * HTTPS; tests feed it recorded requests and compare the answers byte for byte.
 *
 * - inject (`POST /inject`): a Pod CREATE is answered with the injector's result as a base64 JSON
 *   Patch (inject-pod.ts, inject-patch.ts); a skipped pod is allowed unchanged; a refused one
 *   (bad injector annotations) is denied with the reason. Anything else is allowed unchanged.
 * - validate (`POST /validate`): a CREATE or UPDATE of a `weft.dev` TrafficPolicy,
 *   PeerAuthentication or AuthorizationPolicy is parsed with the same parsers as the control
 *   plane (`parseKubeObject`); errors deny it with a message naming each field. DELETE, status
 *   updates and other kinds are allowed.
 */
import { isPlainObject, parseKubeObject } from '@weft/api';
import type { InjectionConfig } from './inject-config';
import { AdmissionBodyError } from './inject-errors';
import { createJsonPatch } from './inject-patch';
import { injectPod } from './inject-pod';

type Obj = Record<string, any>;

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const VALIDATED_KINDS: readonly string[] = ['TrafficPolicy', 'PeerAuthentication', 'AuthorizationPolicy'];

/** What a review decided (the label of `weft_webhook_requests_total{result}`) and why, for logs. */
export type AdmissionResult = 'injected' | 'skipped' | 'refused' | 'ignored' | 'accepted' | 'denied';

export interface AdmissionDecision {
  /** The whole AdmissionReview to send back. */
  readonly review: Obj;
  readonly result: AdmissionResult;
  /** `namespace/name` (or `namespace/generateName*`) of the object. */
  readonly object: string;
  readonly reason?: string;
}

export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: { readonly group: string; readonly version: string; readonly kind: string };
  readonly operation: string;
  readonly namespace: string;
  readonly name: string;
  readonly subResource: string;
  readonly object: Obj | undefined;
}

/** Reads an AdmissionReview v1 body. Throws `AdmissionBodyError` with what is wrong. */
export function parseAdmissionReview(body: string): AdmissionRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (e) {
    throw new AdmissionBodyError(`the body is not JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(raw)) throw new AdmissionBodyError('the body must be an AdmissionReview object');
  if (raw.apiVersion !== ADMISSION_API_VERSION || raw.kind !== 'AdmissionReview') {
    throw new AdmissionBodyError(`expected apiVersion ${ADMISSION_API_VERSION}, kind AdmissionReview; got ${JSON.stringify(raw.apiVersion)}, ${JSON.stringify(raw.kind)} (admissionReviewVersions must be [v1])`);
  }
  const r = raw.request;
  if (!isPlainObject(r)) throw new AdmissionBodyError('request: required (an object)');
  if (typeof r.uid !== 'string' || r.uid === '') throw new AdmissionBodyError('request.uid: required (a string)');
  const k = r.kind;
  if (!isPlainObject(k) || typeof k.kind !== 'string' || typeof k.version !== 'string') throw new AdmissionBodyError('request.kind: required ({group, version, kind})');
  if (typeof r.operation !== 'string') throw new AdmissionBodyError('request.operation: required (a string)');
  if (r.object !== undefined && r.object !== null && !isPlainObject(r.object)) throw new AdmissionBodyError('request.object: must be an object');
  return {
    uid: r.uid,
    kind: { group: typeof k.group === 'string' ? k.group : '', version: k.version, kind: k.kind },
    operation: r.operation,
    namespace: typeof r.namespace === 'string' ? r.namespace : '',
    name: typeof r.name === 'string' ? r.name : '',
    subResource: typeof r.subResource === 'string' ? r.subResource : '',
    object: isPlainObject(r.object) ? (r.object as Obj) : undefined,
  };
}

function review(response: Obj): Obj {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

function objectName(req: AdmissionRequest): string {
  const meta: Obj = req.object?.metadata ?? {};
  const ns = req.namespace || meta.namespace || '';
  const name = req.name || meta.name || (meta.generateName ? `${meta.generateName}*` : '');
  return ns ? `${ns}/${name}` : name;
}

/** The mutating webhook: `config` is the InjectionConfig in force. */
export function reviewInject(req: AdmissionRequest, config: InjectionConfig): AdmissionDecision {
  const object = objectName(req);
  const allow = (result: AdmissionResult, reason?: string): AdmissionDecision => ({ review: review({ uid: req.uid, allowed: true }), result, object, ...(reason ? { reason } : {}) });
  const isPod = req.kind.group === '' && req.kind.version === 'v1' && req.kind.kind === 'Pod';
  if (!isPod || req.operation !== 'CREATE' || req.subResource !== '') return allow('ignored', `${req.operation} ${req.kind.kind}${req.subResource ? `/${req.subResource}` : ''} is not injected`);
  if (!req.object) return allow('ignored', 'no object in the request');
  const namespace = req.namespace || req.object.metadata?.namespace || 'default';
  const out = injectPod(req.object, namespace, config);
  if (out.kind === 'skipped') return allow('skipped', out.reason);
  if (out.kind === 'refused') {
    const message = `weft sidecar injection refused for pod ${object}: ${out.reason}`;
    return { review: review({ uid: req.uid, allowed: false, status: { code: 400, reason: 'BadRequest', message } }), result: 'refused', object, reason: out.reason };
  }
  const patch = Buffer.from(JSON.stringify(createJsonPatch(req.object, out.pod))).toString('base64');
  const response: Obj = { uid: req.uid, allowed: true, patchType: 'JSONPatch', patch };
  if (out.warnings.length) response.warnings = out.warnings.map((w) => `weft injection: ${w}`);
  return { review: review(response), result: 'injected', object };
}

/** The validating webhook for the three `weft.dev` kinds. */
export function reviewValidate(req: AdmissionRequest): AdmissionDecision {
  const object = objectName(req);
  const allow = (result: AdmissionResult, reason?: string): AdmissionDecision => ({ review: review({ uid: req.uid, allowed: true }), result, object, ...(reason ? { reason } : {}) });
  if (req.kind.group !== 'weft.dev' || !VALIDATED_KINDS.includes(req.kind.kind)) return allow('ignored', `${req.kind.kind} is not validated here`);
  if ((req.operation !== 'CREATE' && req.operation !== 'UPDATE') || req.subResource !== '') return allow('ignored', `${req.operation}${req.subResource ? ` ${req.subResource}` : ''} is always allowed`);
  if (!req.object) return allow('ignored', 'no object in the request');
  // A generateName'd object has no name yet, and the namespace may be only in the request.
  const meta: Obj = req.object.metadata ?? {};
  const named = { ...req.object, metadata: { ...meta, name: meta.name || req.name || `${meta.generateName ?? ''}x`, namespace: meta.namespace || req.namespace || undefined } };
  const parsed = parseKubeObject(named);
  if (parsed.kind !== 'invalid') return allow('accepted');
  const message = `${req.kind.kind} ${object} is invalid: ${parsed.errors.join('; ')}`;
  return { review: review({ uid: req.uid, allowed: false, status: { code: 422, reason: 'Invalid', message } }), result: 'denied', object, reason: parsed.errors.join('; ') };
}
