export { startSidecar, sidecarOptionsFromEnv } from './sidecar';
export type { SidecarOptions, Sidecar } from './sidecar';
export { XdsClient } from './xds-client';
export type { XdsClientOptions, HeldState } from './xds-client';
export { buildProxyConfig } from './config-from-xds';
export { applyCapture, captureRules, DEFAULT_CAPTURE, removeCapture, validateCapture } from './capture-iptables';
export type { CaptureOptions } from './capture-iptables';
export { assertCaptureAvailable, CaptureUnavailableError, originalDestination } from './original-dst';
