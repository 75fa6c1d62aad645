import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "./metrics.ts";

Deno.test("Registry renders counters, gauges and histograms in Prometheus text format", () => {
  const r = new Registry();
  const exits = r.add(new Counter("reaperd_exits_total", "Exits recorded.", []));
  r.add(new Gauge("reaperd_monitored", "Monitored containers.", () => [[{}, 3]]));
  const lat = r.add(new Histogram("reaperd_latency_seconds", "Latency.", [0.01, 0.1]));
  exits.inc({ known: "true" });
  exits.inc({ known: "true" });
  exits.inc({ known: "false" });
  lat.observe(0.005);
  lat.observe(0.05);
  lat.observe(3);
  const text = r.render();
  assert.match(text, /^reaperd_exits_total\{known="true"\} 2$/m);
  assert.match(text, /^reaperd_exits_total\{known="false"\} 1$/m);
  assert.match(text, /^# TYPE reaperd_monitored gauge\nreaperd_monitored 3$/m);
  assert.match(text, /^reaperd_latency_seconds_bucket\{le="0.01"\} 1$/m);
  assert.match(text, /^reaperd_latency_seconds_bucket\{le="0.1"\} 2$/m);
  assert.match(text, /^reaperd_latency_seconds_bucket\{le="\+Inf"\} 3$/m);
  assert.match(text, /^reaperd_latency_seconds_count 3$/m);
  assert.equal(exits.get({ known: "true" }), 2);
});

Deno.test("Counter escapes label values", () => {
  const c = new Counter("c", "h");
  c.inc({ step: 'a"b\\c' });
  assert.match(c.render().join("\n"), /c\{step="a\\"b\\\\c"\} 1/);
});

Deno.test("Counter shows its initial series at 0 and never a placeholder that vanishes", () => {
  const labelled = new Counter("a_total", "h", [{ result: "ok" }, { result: "failed" }]);
  assert.deepEqual(labelled.render().slice(2), [
    'a_total{result="ok"} 0',
    'a_total{result="failed"} 0',
  ]);
  labelled.inc({ result: "failed" });
  assert.deepEqual(labelled.render().slice(2), [
    'a_total{result="ok"} 0',
    'a_total{result="failed"} 1',
  ]);
  const plain = new Counter("b_total", "h");
  assert.deepEqual(plain.render().slice(2), ["b_total 0"]);
  const none = new Counter("c_total", "h", []);
  assert.deepEqual(none.render().slice(2), []);
  none.inc({ step: "x" });
  assert.deepEqual(none.render().slice(2), ['c_total{step="x"} 1']);
});
