export { startSidecar, sidecarOptionsFromEnv } from './sidecar';
export type { SidecarOptions, Sidecar } from './sidecar';
export { XdsClient } from './xds-client';
export type { XdsClientOptions, HeldState } from './xds-client';
export { buildProxyConfig } from './config-from-xds';
