import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

/** What only grows (prom-client's types are these strings at run time, whatever its .d.ts says). */
const CUMULATIVE = new Set(['counter', 'histogram']);

/**
 * One /metrics answer for several serve processes, summed (prom-client's aggregation), and kept
 * monotonic. Prometheus reads any drop in a counter as a reset and counts the whole new value as
 * the increase; a plain sum drops whenever a process is replaced or misses one scrape, so:
 * - a process that does not answer in time is counted with its last answer;
 * - a process that has gone keeps its counters and histograms at their last answer ("retired"),
 *   its gauges go with it (its open connections are not open any more).
 * What a process counted after its last answer and before it died is lost: the sum is low by that,
 * never high and never falling.
 */
export class ClusterMetrics {
  private readonly last = new Map<number, MetricsSnapshot>();
  private readonly lastSeq = new Map<number, number>();
  private retired: MetricsSnapshot = [];

  /**
   * A process's answer to question `seq` (increasing). Two scrapes at once may get their answers in
   * either order: the older one must not replace the newer (the sum would fall).
   */
  update(processId: number, snapshot: MetricsSnapshot, seq: number): void {
    if (seq <= (this.lastSeq.get(processId) ?? -Infinity)) return;
    this.lastSeq.set(processId, seq);
    this.last.set(processId, snapshot);
  }

  /** The process has exited. */
  retire(processId: number): void {
    const snapshot = this.last.get(processId);
    this.last.delete(processId);
    this.lastSeq.delete(processId);
    if (!snapshot) return;
    const cumulative = snapshot.filter((m) => CUMULATIVE.has(String(m.type)));
    if (this.retired.length === 0) {
      this.retired = cumulative;
      return;
    }
    // Folded into one snapshot, so a service that replaces processes for months keeps one.
    this.retired = sumSnapshots([this.retired, cumulative]);
  }

  /** Prometheus text: every process's last answer and what retired processes counted. */
  async text(): Promise<string> {
    const parts = [...this.last.values()];
    if (this.retired.length > 0) parts.push(this.retired);
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  readonly contentType = AggregatorRegistry.aggregate([]).contentType;
}

function sumSnapshots(parts: MetricsSnapshot[]): MetricsSnapshot {
  const byName = new Map<string, MetricsSnapshot[number]>();
  for (const part of parts) {
    for (const m of part) {
      const seen = byName.get(m.name);
      if (!seen) {
        byName.set(m.name, { ...m, values: m.values.map((v) => ({ ...v })) });
        continue;
      }
      for (const v of m.values) {
        const key = labelKey(v);
        const same = seen.values.find((s) => labelKey(s) === key);
        if (same) same.value += v.value;
        else seen.values.push({ ...v });
      }
    }
  }
  return [...byName.values()];
}

/** Histograms' bucket values carry the series name beside the labels (…_bucket, …_sum). */
function labelKey(v: MetricValue<string> & { metricName?: string }): string {
  const labels = Object.entries(v.labels).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([v.metricName ?? '', labels]);
}
