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
export { KubeClient, KubeApiError } from './kube-client';
export type { KubeModeOptions } from './control-plane-kube';
export { loadMeshConfig, parseMeshConfig, MeshConfigError } from './mesh-config';
export type { MeshConfig } from './mesh-config';
