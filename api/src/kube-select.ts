/**
 * Label selection, as Kubernetes does it for Service selectors and `matchLabels`.
 */

/**
 * True when every `key: value` of `selector` is among `labels` (equality-based selection).
 * An empty selector selects everything; callers that mean "no selector" (a Service without
 * one) must not call this. Pure and synchronous.
 */
export function matchesSelector(
  labels: Readonly<Record<string, string>>,
  selector: Readonly<Record<string, string>>,
): boolean {
  for (const [key, value] of Object.entries(selector)) {
    if (!Object.prototype.hasOwnProperty.call(labels, key) || labels[key] !== value) return false;
  }
  return true;
}
