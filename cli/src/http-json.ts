/** Fetching JSON from a Weft debug or admin endpoint, with one-line errors a person can act on. */
import { CliError } from './errors';

/** GETs `url` and parses JSON; `what` names the server in errors ("the control plane at …"). */
export async function getJson(url: string, what: string, timeoutMs = 3000): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new CliError(`cannot reach ${what} (${url}): ${cause}`, { cause: err });
  }
  const body = await res.text();
  if (!res.ok) throw new CliError(`${what} answered ${res.status}: ${body.trim().split('\n')[0]}`);
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new CliError(`${what} did not answer JSON (${url})`, { cause: err });
  }
}

/** Left-aligned columns separated by two spaces, header first. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
