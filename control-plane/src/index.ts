export { startControlPlane } from './control-plane';
export type { ControlPlaneOptions, ControlPlane } from './control-plane';
// The pipeline's stages, for tools and tests that drive one stage with real inputs.
export { AdsServer } from './ads-server';
export type { AdsHooks, StreamInfo } from './ads-hooks';
export { SnapshotCache, encodeSnapshot } from './snapshot-cache';
export type { NodeSnapshot } from './snapshot-cache';
export { translate } from './translate';
export type { MeshTracing } from './translate-listeners';
export type { Resources } from './translate';
export { buildWorld } from './world';
export type { IdentityOptions } from './control-plane';
export { CertificateAuthority } from './ca-authority';
export { tokenPath } from './token-files';
// Sidecar injection and the admission webhooks (issue 8).
export { DEFAULT_INJECTION_CONFIG, injectionConfigFromText, loadInjectionConfig, parseInjectionConfig } from './inject-config';
export type { InjectionConfig } from './inject-config';
export { InjectError, InjectionConfigError } from './inject-errors';
export { injectPod } from './inject-pod';
export type { InjectOutcome } from './inject-pod';
export { createJsonPatch } from './inject-patch';
export { injectManifests, ManifestInjectError } from './inject-manifests';
export { DEFAULT_WEBHOOK_ADDRESS, WebhookServer } from './webhook-server';
export type { ServingKeyPair, WebhookServerOptions } from './webhook-server';
export { ServingCertificate, servingNamesFor } from './ca-serving-cert';
export type { ServingPair } from './ca-serving-cert';
