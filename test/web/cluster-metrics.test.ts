import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ClusterMetrics } from '../../src/web/cluster-metrics.js';

/** A serve process's registry, as web/metrics.ts builds one (real prom-client metrics). */
function processRegistry() {
  const registry = new Registry();
  const requests = new Counter({ name: 'requests_total', help: 'h', labelNames: ['route'], registers: [registry] });
  const open = new Gauge({ name: 'open_connections', help: 'h', registers: [registry] });
  const duration = new Histogram({ name: 'duration_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
  return { registry, requests, open, duration };
}

/** What reaches the primary: the JSON, through the IPC channel. */
const answer = async (r: Registry) => JSON.parse(JSON.stringify(await r.getMetricsAsJSON())) as Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

const value = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(series + ' '))?.split(' ')[1]);

test('the sum of several processes stays monotonic when one is replaced: its counters stay, its gauges go', async () => {
  const a = processRegistry();
  const b = processRegistry();
  const m = new ClusterMetrics();
  a.requests.inc({ route: '/x' }, 5);
  b.requests.inc({ route: '/x' }, 7);
  b.requests.inc({ route: '/y' }, 1);
  a.open.set(3);
  b.open.set(4);
  a.duration.observe(0.05);
  b.duration.observe(0.5);
  m.update(1, await answer(a.registry), 1);
  m.update(2, await answer(b.registry), 2);
  let text = await m.text();
  assert.equal(value(text, 'requests_total{route="/x"}'), 12);
  assert.equal(value(text, 'open_connections'), 7);
  assert.equal(value(text, 'duration_seconds_count'), 2);

  // b dies; c replaces it and counts from zero.
  m.retire(2);
  const c = processRegistry();
  c.requests.inc({ route: '/x' }, 2);
  c.open.set(1);
  m.update(3, await answer(c.registry), 3);
  text = await m.text();
  assert.equal(value(text, 'requests_total{route="/x"}'), 5 + 7 + 2);
  assert.equal(value(text, 'requests_total{route="/y"}'), 1);
  assert.equal(value(text, 'open_connections'), 3 + 1, 'the dead process’s connections are not open any more');
  assert.equal(value(text, 'duration_seconds_bucket{le="1"}'), 2);
  assert.equal(value(text, 'duration_seconds_count'), 2);

  // A second retirement folds into the first; a process without an answer yet adds nothing.
  m.retire(3);
  m.retire(99);
  text = await m.text();
  assert.equal(value(text, 'requests_total{route="/x"}'), 14);
  assert.equal(value(text, 'open_connections'), 3);
});

test('a process that misses a scrape is counted with its last answer', async () => {
  const a = processRegistry();
  const m = new ClusterMetrics();
  a.requests.inc({ route: '/x' }, 5);
  m.update(1, await answer(a.registry), 4);
  a.requests.inc({ route: '/x' }, 5);
  // No update this time (the process was busy beyond the timeout).
  assert.equal(value(await m.text(), 'requests_total{route="/x"}'), 5);
});

test('of two answers from one process, the later question wins, whatever order they arrive in', async () => {
  const a = processRegistry();
  const m = new ClusterMetrics();
  a.requests.inc({ route: '/x' }, 5);
  const older = await answer(a.registry);
  a.requests.inc({ route: '/x' }, 5);
  const newer = await answer(a.registry);
  m.update(1, newer, 2);
  m.update(1, older, 1);
  assert.equal(value(await m.text(), 'requests_total{route="/x"}'), 10);
});
