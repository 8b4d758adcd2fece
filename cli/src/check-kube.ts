/**
 * `weft check`'s Kubernetes checks, asked of the API server (`--kubeconfig`):
 *
 *   --pre (before `helm install`): the API server answers and is recent enough for native
 *   sidecars (1.29); the admission API is served; the caller may create what the chart creates;
 *   the API server issues and accepts tokens with audience `weft` (a real TokenRequest and
 *   TokenReview, exactly what sidecars and the CA rely on); whether Weft's CRDs are already there.
 *
 *   after install: the CRDs are Established; the two webhook configurations exist with a caBundle;
 *   the leader Lease is held and fresh; the CA Secret exists; every weft.dev policy in the
 *   cluster is Accepted (its status.conditions).
 */
import { NATIVE_SIDECAR_MINOR, supportsNativeSidecars } from '@weft/api';
import type { KubeClient } from '@weft/control-plane';
import type { Finding, Section } from './cmd-check';

const CRDS = ['trafficpolicies', 'peerauthentications', 'authorizationpolicies'] as const;

type Json = Record<string, any>;

async function get(client: KubeClient, path: string): Promise<Json | Error> {
  try {
    return await client.request<Json>('GET', path);
  } catch (e) {
    return e as Error;
  }
}

/** Checks before install. */
export async function preInstallChecks(client: KubeClient): Promise<Section[]> {
  const api: Section = { title: 'kubernetes api', findings: [] };
  const version = await get(client, '/version');
  if (version instanceof Error) {
    api.findings.push({ level: 'fail', text: `the API server at ${client.serverUrl} does not answer: ${version.message}`, hint: 'check --kubeconfig (its current context)' });
    return [api];
  }
  api.findings.push({ level: 'ok', text: `reachable at ${client.serverUrl}: Kubernetes ${version.gitVersion}` });
  api.findings.push(supportsNativeSidecars(version)
    ? { level: 'ok', text: `native sidecars supported (1.${NATIVE_SIDECAR_MINOR} or later)` }
    : { level: 'warn', text: `Kubernetes ${version.gitVersion} has no native sidecars`, hint: 'install with --set injection.nativeSidecar=false (docs/operations.md, "Native sidecar or regular container")' });
  const admission = await get(client, '/apis/admissionregistration.k8s.io/v1');
  api.findings.push(admission instanceof Error
    ? { level: 'fail', text: `admissionregistration.k8s.io/v1 is not served: ${admission.message}`, hint: 'sidecar injection needs admission webhooks' }
    : { level: 'ok', text: 'admission webhooks API served (admissionregistration.k8s.io/v1)' });

  const perms: Section = { title: 'permissions', findings: [] };
  const wanted: [string, string, string][] = [
    ['apiextensions.k8s.io', 'customresourcedefinitions', 'create'],
    ['rbac.authorization.k8s.io', 'clusterroles', 'create'],
    ['rbac.authorization.k8s.io', 'clusterrolebindings', 'create'],
    ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'create'],
    ['admissionregistration.k8s.io', 'validatingwebhookconfigurations', 'create'],
    ['', 'namespaces', 'create'],
    ['apps', 'deployments', 'create'],
  ];
  const denied: string[] = [];
  for (const [group, resource, verb] of wanted) {
    const r = await accessReview(client, group, resource, verb);
    if (r !== true) denied.push(`${verb} ${group ? `${resource}.${group}` : resource}${r === false ? '' : ` (${r})`}`);
  }
  perms.findings.push(denied.length
    ? { level: 'fail', text: `you may not ${denied.join(', ')}`, hint: 'installing the chart needs cluster-admin (CRDs, RBAC, webhooks)' }
    : { level: 'ok', text: `you may create everything the chart installs (${wanted.length} kinds checked)` });

  const tokens: Section = { title: 'workload tokens', findings: [] };
  tokens.findings.push(await tokenRoundTrip(client));

  const existing: Section = { title: 'existing install', findings: [] };
  const present: string[] = [];
  for (const plural of CRDS) {
    if (!((await get(client, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.weft.dev`)) instanceof Error)) present.push(plural);
  }
  existing.findings.push(present.length
    ? { level: 'warn', text: `Weft's CRDs are already installed (${present.join(', ')})`, hint: 'upgrade with `helm upgrade` (docs/operations.md, "Upgrade"), not a second install' }
    : { level: 'ok', text: 'no Weft CRDs yet: a fresh install' });
  return [api, perms, tokens, existing];
}

/** SelfSubjectAccessReview: true, false, or why it could not be asked. */
async function accessReview(client: KubeClient, group: string, resource: string, verb: string): Promise<boolean | string> {
  try {
    const r = await client.request<Json>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { group, resource, verb } } },
    });
    return r.status?.allowed === true;
  } catch (e) {
    return (e as Error).message;
  }
}

/** A token for `default/default` with audience `weft`, then a TokenReview of it with that audience. */
async function tokenRoundTrip(client: KubeClient): Promise<Finding> {
  let token: string;
  try {
    const r = await client.request<Json>('POST', '/api/v1/namespaces/default/serviceaccounts/default/token', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['weft'], expirationSeconds: 600 } },
    });
    token = r.status?.token;
  } catch (e) {
    return { level: 'warn', text: `could not request a token with audience weft to test it: ${(e as Error).message}`, hint: 'sidecars get projected tokens with audience weft; the control plane checks them with TokenReview' };
  }
  try {
    const r = await client.request<Json>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: ['weft'] } },
    });
    if (r.status?.authenticated === true) return { level: 'ok', text: `tokens with audience weft are issued and accepted (TokenReview: ${r.status.user?.username})` };
    return { level: 'fail', text: `a token with audience weft is not accepted: ${r.status?.error ?? 'not authenticated'}`, hint: 'the API server must accept the audience (kube-apiserver --api-audiences, or its default, the issuer)' };
  } catch (e) {
    return { level: 'fail', text: `TokenReview failed: ${(e as Error).message}`, hint: 'the control plane validates sidecar tokens with TokenReview' };
  }
}

/** Checks of an installed mesh; `namespace` is the control plane's. */
export async function installedChecks(client: KubeClient, namespace: string): Promise<Section[]> {
  const k8s: Section = { title: 'kubernetes', findings: [] };
  for (const plural of CRDS) {
    const crd = await get(client, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.weft.dev`);
    const established = !(crd instanceof Error) && (crd.status?.conditions ?? []).some((c: Json) => c.type === 'Established' && c.status === 'True');
    k8s.findings.push(established
      ? { level: 'ok', text: `CRD ${plural}.weft.dev established` }
      : { level: 'fail', text: `CRD ${plural}.weft.dev ${crd instanceof Error ? 'missing' : 'not established'}`, hint: 'helm install (or kubectl apply -f charts/weft/crds/)' });
  }
  for (const [kind, name] of [['mutatingwebhookconfigurations', 'weft-sidecar-injector'], ['validatingwebhookconfigurations', 'weft-validator']] as const) {
    const w = await get(client, `/apis/admissionregistration.k8s.io/v1/${kind}/${name}`);
    if (w instanceof Error) k8s.findings.push({ level: 'fail', text: `${name} missing`, hint: 'helm install' });
    else if ((w.webhooks ?? []).every((h: Json) => h.clientConfig?.caBundle)) k8s.findings.push({ level: 'ok', text: `${name}: caBundle set` });
    else k8s.findings.push({ level: 'fail', text: `${name}: no caBundle yet`, hint: 'the control plane\'s leader writes it: is a replica running and leading?' });
  }
  const lease = await get(client, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/weft-control-plane-leader`);
  if (lease instanceof Error) {
    k8s.findings.push({ level: 'fail', text: `no leader Lease in ${namespace}`, hint: 'is the control plane running (with --namespace, or in this namespace)?' });
  } else {
    const holder = lease.spec?.holderIdentity;
    const age = (Date.now() - Date.parse(lease.spec?.renewTime ?? '')) / 1000;
    const duration = Number(lease.spec?.leaseDurationSeconds ?? 10);
    k8s.findings.push(holder && age <= duration
      ? { level: 'ok', text: `leader ${holder} (renewed ${Math.max(0, Math.round(age))} s ago)` }
      : { level: 'fail', text: holder ? `the leader ${holder} has not renewed for ${Math.round(age)} s` : 'no leader', hint: 'status, caBundles and root ConfigMaps are not being written' });
  }
  const secret = await get(client, `/api/v1/namespaces/${namespace}/secrets/weft-ca`);
  k8s.findings.push(secret instanceof Error
    ? { level: 'warn', text: `no CA Secret weft-ca in ${namespace}`, hint: 'the control plane creates it on start, unless it runs with --no-ca or an operator CA' }
    : { level: 'ok', text: `CA Secret ${namespace}/weft-ca present` });

  const policies: Section = { title: 'policy status', findings: [] };
  let total = 0;
  const bad: Finding[] = [];
  for (const plural of CRDS) {
    const list = await get(client, `/apis/weft.dev/v1alpha1/${plural}`);
    if (list instanceof Error) continue;
    for (const item of list.items ?? []) {
      total++;
      const c = (item.status?.conditions ?? []).find((x: Json) => x.type === 'Accepted');
      if (c?.status === 'True') continue;
      const key = `${item.kind ?? plural}/${item.metadata.namespace}/${item.metadata.name}`;
      bad.push({ level: 'fail', text: `${key} not accepted (${c?.reason ?? 'no status yet'}): ${c?.message ?? ''}`.trimEnd(), hint: 'kubectl get tp,pa,ap -A shows every policy\'s Accepted column' });
    }
  }
  policies.findings.push({ level: 'ok', text: `${total - bad.length} of ${total} ${total === 1 ? 'policy' : 'policies'} accepted` }, ...bad);
  return [k8s, policies];
}
