/**
 * What the leader keeps current in the cluster besides policy status:
 * - the ConfigMap `weft-root-ca` (key `root-cert.pem`: every trusted root) in each namespace
 *   labelled `weft.dev/inject=enabled`, which injected sidecars mount to verify the control plane
 *   on 15012 (Istio's `istio-ca-root-cert`);
 * - the `caBundle` of each webhook in the MutatingWebhookConfiguration `weft-sidecar-injector`
 *   and the ValidatingWebhookConfiguration `weft-validator`, so the API server trusts the
 *   webhook's serving certificate, which our CA signs.
 * It runs on every trust-bundle or namespace change, whenever one of the two webhook
 * configurations changes (watched: `helm install` creates them with an empty caBundle, an upgrade
 * or a person may overwrite it), and every `resyncMs`; writes happen only where the content differs.
 */
import type { Logger } from '@weft/api';
import { KubeApiError, type KubeClient } from './kube-client';
import { watchNamed, type Informer } from './kube-informer';
import type { NamespaceInfo } from './registry-kube';

export const ROOT_CA_CONFIGMAP = 'weft-root-ca';
export const INJECT_LABEL = 'weft.dev/inject';
export const WEBHOOK_CONFIGS = [
  { path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', name: 'weft-sidecar-injector', plural: 'mutatingwebhookconfigurations', kind: 'MutatingWebhookConfiguration' },
  { path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', name: 'weft-validator', plural: 'validatingwebhookconfigurations', kind: 'ValidatingWebhookConfiguration' },
] as const;

export interface PublisherOptions {
  readonly client: KubeClient;
  readonly log: Logger;
  readonly namespaces: () => readonly NamespaceInfo[];
  /** Every root the mesh trusts (PEM). */
  readonly trustBundle: () => string | undefined;
  /** Default 60 s. */
  readonly resyncMs?: number;
  /** The webhook configurations' watches (default: the informers' 250 ms to 30 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

interface ConfigMap {
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

interface WebhookConfiguration {
  metadata: { name: string; resourceVersion?: string };
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}

export class ClusterPublisher {
  private active = false;
  private running?: Promise<void>;
  private again = false;
  private timer?: NodeJS.Timeout;
  private readonly missingReported = new Set<string>();

  private readonly watchers: Informer<string>[];

  constructor(private readonly opts: PublisherOptions) {
    this.watchers = WEBHOOK_CONFIGS.map((w) => watchNamed({
      type: { group: 'admissionregistration.k8s.io', version: 'v1', plural: w.plural, kind: w.kind },
      client: opts.client, log: opts.log, name: w.name, onChange: () => this.kick(),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    }));
  }

  /** Leader only. */
  setActive(on: boolean): void {
    this.active = on;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (on) {
      for (const w of this.watchers) void w.start();
      this.timer = setInterval(() => this.kick(), this.opts.resyncMs ?? 60_000);
      this.timer.unref();
      this.kick();
    }
  }

  /** Something changed (the trust bundle, a namespace): publish again. */
  kick(): void {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.publish().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Resolves when the publishing under way (if any) has finished. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.setActive(false);
    await Promise.all(this.watchers.map((w) => w.stop()));
  }

  private async publish(): Promise<void> {
    const bundle = this.opts.trustBundle();
    if (!bundle) return;
    for (const ns of this.opts.namespaces()) {
      if (!this.active) return;
      if (ns.labels[INJECT_LABEL] !== 'enabled') continue;
      await this.rootConfigMap(ns.name, bundle).catch((e: Error) =>
        this.opts.log.warn('could not write the root certificate ConfigMap', { namespace: ns.name, error: e.message }));
    }
    const caBundle = Buffer.from(bundle).toString('base64');
    for (const w of WEBHOOK_CONFIGS) {
      if (!this.active) return;
      await this.webhookCaBundle(w.path, w.name, caBundle).catch((e: Error) =>
        this.opts.log.warn('could not update a webhook caBundle', { webhookConfiguration: w.name, error: e.message }));
    }
  }

  private async rootConfigMap(namespace: string, bundle: string): Promise<void> {
    const { client, log } = this.opts;
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    let current: ConfigMap | undefined;
    try {
      current = await client.request<ConfigMap>('GET', `${path}/${ROOT_CA_CONFIGMAP}`);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 404)) throw e;
    }
    if (current?.data?.['root-cert.pem'] === bundle) return;
    if (current) {
      await client.request('PUT', `${path}/${ROOT_CA_CONFIGMAP}`, { body: { ...current, data: { ...(current.data ?? {}), 'root-cert.pem': bundle } } });
    } else {
      await client.request('POST', path, {
        body: {
          apiVersion: 'v1', kind: 'ConfigMap', data: { 'root-cert.pem': bundle },
          metadata: { name: ROOT_CA_CONFIGMAP, namespace, labels: { 'app.kubernetes.io/managed-by': 'weft-control-plane' } },
        },
      });
    }
    log.info('root certificate ConfigMap written', { namespace, configMap: ROOT_CA_CONFIGMAP });
  }

  private async webhookCaBundle(path: string, name: string, caBundle: string): Promise<void> {
    const { client, log } = this.opts;
    let current: WebhookConfiguration;
    try {
      current = await client.request<WebhookConfiguration>('GET', `${path}/${name}`);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) {
        // Not installed (a control plane run outside the chart): nothing to keep current.
        if (!this.missingReported.has(name)) log.info('no webhook configuration to keep current', { webhookConfiguration: name });
        this.missingReported.add(name);
        return;
      }
      throw e;
    }
    this.missingReported.delete(name);
    const webhooks = current.webhooks ?? [];
    if (webhooks.every((w) => w.clientConfig?.caBundle === caBundle)) return;
    const next = { ...current, webhooks: webhooks.map((w) => ({ ...w, clientConfig: { ...(w.clientConfig ?? {}), caBundle } })) };
    await client.request('PUT', `${path}/${name}`, { body: next });
    log.info('webhook caBundle updated', { webhookConfiguration: name, webhooks: webhooks.length });
  }
}
