// Prometheus' text exposition format, as GET /metrics prints it (sakura_* and llamacpp:* samples).

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function number(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

/** Samples as [{name, labels, value}]; comments (# HELP, # TYPE) and blank lines skipped. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line.trim());
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[3] || "").matchAll(LABEL)) {
      labels[key] = value.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    samples.push({ name: match[1], labels, value: number(match[4]) });
  }
  return samples;
}

/** The sum of every sample called ``name`` (all label sets), or null when there is none. */
export function total(samples, name) {
  const found = samples.filter((sample) => sample.name === name);
  return found.length ? found.reduce((sum, sample) => sum + sample.value, 0) : null;
}
