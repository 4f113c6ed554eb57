// The offline tools' usage texts, apart from their code so the CLI can print `--help`
// without loading the tools (a running proxy never loads src/tools/).

export const DEFAULT_STATUS_ADDR = '127.0.0.1:9325';

export const STATUS_USAGE = `usage: postern status [--metrics HOST:PORT | -c FILE] [--watch [SECONDS]]
  Live sessions and backend states from a running proxy's metrics listener (/sessions).
    -m, --metrics HOST:PORT   the metrics listener (default ${DEFAULT_STATUS_ADDR})
    -c, --config FILE         read the address from FILE's metrics.listen
    -w, --watch [SECONDS]     redraw every SECONDS (default 2) until Ctrl-C
`;

export const REPORT_USAGE = `usage: postern report [FILE...] [--json] [--top N] [--since WHEN] [--until WHEN]
  A pflogsumm-style summary of Postern's log: JSON (log.format: json) or text (log.format:
  text) records, from FILEs (.gz too) or stdin (without FILE, or with -), read as a stream.
    --json      one JSON object instead of the text report
    --top N     entries in each top list (default 10, 1-1000)
    --since WHEN, --until WHEN
                only records from WHEN on / before WHEN: an ISO time (2026-03-01,
                2026-03-01T10:00, 2026-03-01T10:00:00+02:00; UTC without a zone) or
                relative to now (-30m, -1h, -2d, -1w)
`;
