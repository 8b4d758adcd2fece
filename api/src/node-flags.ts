/**
 * The Node/V8 flags Weft's processes should run with. They must be on node's command line (or in
 * NODE_OPTIONS): V8 sizes its heap when the process starts, and `v8.setFlagsFromString` later has
 * no effect on it. So whoever starts a sidecar passes them: `weft demo` for its children, the
 * benchmark, and the injector for a pod's container command (`node <flags> .../main.js sidecar`).
 * The list lives in `api/` so the control plane's injector and the CLI share it.
 *
 * Why these (measured in docs/performance.md, "Memory"):
 * - `--max-semi-space-size=2`: V8's young generation may grow to 2 × 2 MB instead of 2 × 8 MB.
 *   Start-up alone grew it to the maximum and it never shrank while the sidecar ran, costing
 *   about 4 MB idle and 12–25 MB under load; at load the smaller young generation cost no
 *   measurable throughput or p99.
 * - `--v8-pool-size=1`: one V8 background thread (concurrent GC and compilation) instead of four;
 *   a sidecar is one event loop on a share of a core. About 1 MB less.
 * - `--single-threaded-gc`: scavenges run on the event loop's thread instead of waking the
 *   background thread for each one (futex wake-ups and context switches per young-generation GC);
 *   on two shared cores the HTTP/1.1 pair gained about 12% throughput, and RSS under load fell
 *   (docs/performance.md, "Node flags").
 * - `--no-expose-wasm`: no `WebAssembly` global. protobufjs's `long` compiles a small WebAssembly
 *   module when it loads, which brings in V8's wasm engine: about 1 MB of RSS idle for nothing the
 *   sidecar needs (it uses neither `fetch` nor anything else built on wasm; `long` falls back to
 *   plain JS).
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--v8-pool-size=1', '--single-threaded-gc', '--no-expose-wasm'];
