export { startControlPlane } from './control-plane';
export type { ControlPlaneOptions, ControlPlane } from './control-plane';
