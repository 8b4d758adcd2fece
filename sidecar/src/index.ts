export { startSidecar, sidecarOptionsFromEnv } from './sidecar';
export type { SidecarOptions, Sidecar } from './sidecar';
