/**
 * Kubernetes Events, as client-go's leader election records them: `kubectl get events -n
 * weft-system` shows which replica became the leader and when. Best effort: a failure is logged,
 * never raised (an Event is a notice, not state).
 */
import type { Logger } from '@weft/api';
import type { KubeClient } from './kube-client';

export interface EventTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export async function recordEvent(client: KubeClient, log: Logger, target: EventTarget, reason: string, message: string, component: string): Promise<void> {
  const now = new Date().toISOString();
  try {
    await client.request('POST', `/api/v1/namespaces/${target.namespace}/events`, {
      body: {
        apiVersion: 'v1', kind: 'Event',
        metadata: { generateName: `${target.name}.`, namespace: target.namespace },
        involvedObject: { apiVersion: target.apiVersion, kind: target.kind, namespace: target.namespace, name: target.name },
        reason, message, type: 'Normal', source: { component }, firstTimestamp: now, lastTimestamp: now, count: 1,
      },
    });
  } catch (e) {
    log.warn('could not record an Event', { reason, error: (e as Error).message });
  }
}
