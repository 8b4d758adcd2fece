/**
 * One structured logger for every Weft process (STYLE.md, "Logs"): a line of JSON per event on
 * stderr, context first. `child()` adds fields (a module, a node id) to every line it writes.
 * Level from `WEFT_LOG_LEVEL` (debug | info | warn | error | silent; default info).
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /**
   * Whether `level` is written, so a hot path can skip building the fields of a line never written.
   * Absent (a hand-made logger): assume it is.
   */
  enabled?(level: Level): boolean;
}

export type LogSink = (line: string) => void;

function envLevel(): number {
  const v = (process.env.WEFT_LOG_LEVEL ?? 'info').toLowerCase();
  return ORDER[v as Level] ?? ORDER.info;
}

export function createLogger(
  context: Record<string, unknown> = {},
  sink: LogSink = (line) => process.stderr.write(line + '\n'),
  threshold: number = envLevel(),
): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < threshold) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, ...context, msg, ...fields };
    for (const [k, v] of Object.entries(entry)) {
      if (v instanceof Error) entry[k] = v.message;
    }
    sink(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger({ ...context, ...fields }, sink, threshold),
    enabled: (level) => ORDER[level] >= threshold,
  };
}

/** A logger that drops everything (tests that assert on other output). */
export const silentLogger: Logger = createLogger({}, () => undefined, ORDER.silent);
