// Turns the raw rounds into the table, the JSON file and the SVG chart.

export function median(values) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

const sum = values => values.reduce((a, b) => a + b, 0)

/**
 * CPU per request of proxy `a` over that of `b`, taken in each round both ran, as
 * { median, min, max, n }: a pair measured in one round shared the machine's load.
 */
export function pairedCpuRatio(a, b) {
  const ratios = a.rounds
    .flatMap(r => {
      const other = b.rounds.find(x => x.round === r.round)
      return other === undefined ? [] : [r.main.cpuUsPerRequest / other.main.cpuUsPerRequest]
    })
    .filter(Number.isFinite)
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), n: ratios.length }
}

/**
 * Medians over rounds for one proxy. Ratios and added latency are taken per round against the
 * baseline measured in that same round, then the median: the machine's load drifts between rounds,
 * and the pair within a round shared it.
 */
export function summarize(proxy, baseline) {
  const rounds = proxy.rounds
  const same = (pick, combine) =>
    rounds.map(r => {
      const b = baseline?.rounds.find(x => x.round === r.round)
      return b === undefined ? NaN : combine(pick(r), pick(b))
    })
  const cpu = rounds.map(r => r.main.cpuUsPerRequest)
  return {
    id: proxy.id,
    label: proxy.label,
    rounds: rounds.length,
    rps: median(rounds.map(r => r.main.rps)),
    p50ms: median(rounds.map(r => r.main.p50ms)),
    p99ms: median(rounds.map(r => r.main.p99ms)),
    cpuUsPerRequest: median(cpu),
    cpuUsMin: Math.min(...cpu.filter(Number.isFinite)),
    cpuUsMax: Math.max(...cpu.filter(Number.isFinite)),
    cpuRatio: median(
      same(
        r => r.main.cpuUsPerRequest,
        (a, b) => a / b,
      ),
    ),
    c1p50ms: median(rounds.map(r => r.c1?.p50ms)),
    c1AddedMs: median(
      same(
        r => r.c1?.p50ms,
        (a, b) => a - b,
      ),
    ),
    requests: sum(rounds.map(r => r.main.requests)),
    non2xx: sum(rounds.flatMap(r => [r.main.non2xx, r.c1?.non2xx ?? 0])),
    socketErrors: sum(rounds.flatMap(r => [r.main, r.c1].filter(Boolean).map(w => w.errors - w.non2xx))),
    failed: proxy.failed ?? null,
  }
}

const fixed = (n, digits) => (Number.isFinite(n) ? n.toFixed(digits) : '-')
const signed = (n, digits) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(digits)}` : '-')

/** The table as Markdown lines. */
export function table(summaries, baselineLabel) {
  const lines = [
    `| proxy | req/s | p50 ms | p99 ms | CPU µs/req | CPU × ${baselineLabel} | c=1 p50 ms | c=1 added vs ${baselineLabel} ms | non-2xx | socket errors |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ]
  for (const s of summaries) {
    if (s.rounds === 0) {
      lines.push(`| ${s.label} | not measured: ${s.failed ?? 'no round completed'} |${' - |'.repeat(8)}`)
      continue
    }
    const flag = s.non2xx + s.socketErrors > 0 ? ' ⚠' : ''
    lines.push(
      `| ${s.label}${s.failed ? ' (stopped early)' : ''} | ${fixed(s.rps, 0)} | ${fixed(s.p50ms, 2)} | ${fixed(s.p99ms, 2)} | ` +
        `${fixed(s.cpuUsPerRequest, 1)} | ${fixed(s.cpuRatio, 2)}× | ${fixed(s.c1p50ms, 3)} | ${signed(s.c1AddedMs, 3)} | ${s.non2xx}${flag} | ${s.socketErrors}${flag} |`,
    )
  }
  return lines
}

const escape = text => String(text).replace(/[<>&"]/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c])

/** A horizontal bar chart of CPU µs per request, with the min–max of the rounds as a whisker. */
export function svg(summaries, { baselineLabel, subtitle, rounds }) {
  const rows = summaries.filter(s => Number.isFinite(s.cpuUsPerRequest))
  const width = 860
  const left = 250
  const barMax = 400
  const rowH = 34
  const top = 64
  const height = top + rows.length * rowH + 30
  const max = Math.max(1, ...rows.map(s => s.cpuUsMax))
  const scale = v => (v / max) * barMax
  const colour = s => (s.label === baselineLabel ? '#8a8f98' : s.id.startsWith('switchyard') ? '#2f6fdb' : '#3a9a6a')
  const bars = rows.map((s, i) => {
    const y = top + i * rowH
    const w = scale(s.cpuUsPerRequest)
    const ratio = Number.isFinite(s.cpuRatio) ? ` · ${s.cpuRatio.toFixed(2)}× ${baselineLabel}` : ''
    const warn = s.non2xx + s.socketErrors > 0 ? ` · ${s.non2xx + s.socketErrors} errors` : ''
    return [
      `<text x="${left - 10}" y="${y + 17}" text-anchor="end">${escape(s.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 12}" fill="${colour(s)}" rx="2"/>`,
      `<line x1="${(left + scale(s.cpuUsMin)).toFixed(1)}" x2="${(left + scale(s.cpuUsMax)).toFixed(1)}" y1="${y + 15}" y2="${y + 15}" stroke="#222" stroke-width="1.5"/>`,
      `<text x="${(left + Math.max(w, scale(s.cpuUsMax)) + 8).toFixed(1)}" y="${y + 17}">${escape(`${s.cpuUsPerRequest.toFixed(1)} µs${ratio}${warn}`)}</text>`,
    ].join('\n  ')
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">
  <rect width="100%" height="100%" fill="#fff"/>
  <text x="16" y="24" font-size="16" font-weight="bold">CPU per forwarded request (µs, median of ${rounds} rounds; lower is better)</text>
  <text x="16" y="44" fill="#555">${escape(subtitle)}</text>
  ${bars.join('\n  ')}
  <text x="16" y="${height - 10}" fill="#555">Bar: median over rounds; whisker: min–max of the rounds. Ratio: median of per-round ratios to ${escape(baselineLabel)}.</text>
</svg>
`
}
