// Prints the results tables and checks issue 3's targets, for HTTP/1.1 and for gRPC unary alike:
// throughput of the Weft pair >= 50% of the haproxy pair; p99 the Weft pair adds over direct <= 2x
// what the haproxy pair adds; one sidecar's RSS <= 64 MB idle and <= 128 MB under load; and no
// failed request. Pure formatting; measures nothing.

const f = (v, d = 2) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));

export function printTable(title, rows) {
  const head = ['variant', 'req/s (closed)', 'errors', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'open-loop ok/sent'];
  const body = rows.map((r) =>
    r.unsupported
      ? [r.name, r.unsupported, '', '', '', '', '', '']
      : [
          r.name,
          f(r.rps, 0),
          String(r.errors ?? 0),
          f(r.lat?.p50, 3),
          f(r.lat?.p90, 3),
          f(r.lat?.p99, 3),
          f(r.lat?.p999, 3),
          r.lat ? `${r.lat.ok}/${r.lat.sent}` : '-',
        ],
  );
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const b of body) console.log(line(b));
}

/**
 * Returns [{target, measured, pass}] for one protocol's rows and prints them under `title`.
 * `rssIdle` is checked only when given (the idle reading is one per run, shown with HTTP/1.1).
 */
export function checkTargets(title, { direct, weft, haproxy, rssIdle, rssLoad }) {
  const thr = weft.rps / haproxy.rps;
  const addW = weft.lat.p99 - direct.lat.p99;
  const addH = haproxy.lat.p99 - direct.lat.p99;
  const checks = [
    { target: 'throughput (b) >= 50% of (c)', measured: `${(100 * thr).toFixed(0)}% (${f(weft.rps, 0)} vs ${f(haproxy.rps, 0)} req/s)`, pass: thr >= 0.5 },
    {
      target: 'added p99 of (b) <= 2x added p99 of (c)',
      measured: `+${f(addW, 3)} ms vs +${f(addH, 3)} ms (${addH > 0 ? `${(addW / addH).toFixed(1)}x` : 'haproxy adds nothing measurable'})`,
      pass: addW <= 2 * Math.max(addH, 0),
    },
    ...(rssIdle !== undefined ? [{ target: 'sidecar RSS idle <= 64 MB', measured: `${f(rssIdle, 1)} MB`, pass: rssIdle <= 64 }] : []),
    { target: 'sidecar RSS under load <= 128 MB', measured: `${f(rssLoad, 1)} MB`, pass: rssLoad <= 128 },
    { target: 'no failed request in (a), (b), (c)', measured: `${direct.errors} / ${weft.errors} / ${haproxy.errors}`, pass: direct.errors + weft.errors + haproxy.errors === 0 },
  ];
  console.log(`\nissue 3 targets (${title})`);
  const w = Math.max(...checks.map((c) => c.target.length));
  for (const c of checks) console.log(`  ${c.pass ? 'PASS' : 'MISS'}  ${c.target.padEnd(w)}  ${c.measured}`);
  return checks;
}
