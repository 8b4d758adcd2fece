/** What a Kubernetes API server's `/version` says about features Weft relies on. */

export interface KubeVersion {
  readonly major?: string;
  readonly minor?: string;
  readonly gitVersion?: string;
}

/** The first Kubernetes minor with native sidecars on by default (the SidecarContainers feature). */
export const NATIVE_SIDECAR_MINOR = 29;

/** Whether init containers with `restartPolicy: Always` (native sidecars) work there. `minor` may carry a `+` (managed clusters: "29+"). */
export function supportsNativeSidecars(v: KubeVersion): boolean {
  const major = Number(v.major);
  const minor = Number(String(v.minor ?? '').replace(/\D.*$/, ''));
  return major > 1 || (major === 1 && minor >= NATIVE_SIDECAR_MINOR);
}
