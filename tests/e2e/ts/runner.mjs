// What every TypeScript-SDK scenario script shares: the client, names private to one run, error capture, stream
// collection, and the command line. Same contract as the Python SDK's scenario scripts (tests/e2e/sdk.py reads
// both): the scenarios only record what the SDK handed back, and the pytest side makes the assertions.
//
//   HL_E2E_HOST=http://127.0.0.1:PORT/v4 HL_E2E_API_KEY=KEY node SCRIPT.mjs [--tag TAG] SCENARIO [...]
//
// prints one JSON object: {scenario: {"ok": true, "result": ...}} or {scenario: {"ok": false, "error": "..."}}.
import { randomUUID } from "node:crypto";

import { Humanloop, HumanloopError } from "humanloop";

export const MOCK = { provider: "mock", model: "mock-1" };

export function user(text) {
  return [{ role: "user", content: text }];
}

export class Context {
  constructor(host, apiKey, tag) {
    this.host = host;
    this.apiKey = apiKey;
    this.tag = tag;
    // `basePath` is the SDK's name for the host: every request goes to basePath + path, nothing is added.
    this.hl = new Humanloop({ apiKey, basePath: host });
  }

  /** A project name / reference id private to this run. */
  name(label) {
    return `e2e-ts-${label}-${this.tag}`;
  }
}

/** Runs a call that must fail and records what the SDK's HumanloopError carries (status, parsed body). */
export async function apiError(call) {
  try {
    await call();
  } catch (error) {
    if (error instanceof HumanloopError) {
      return { exception: error.name, status: error.status, body: error.responseBody };
    }
    throw error;
  }
  throw new Error("the call succeeded, a HumanloopError was expected");
}

/**
 * Every chunk a `*Stream` method yields. The SDK hands back `response.data` as a ReadableStream whose chunks are
 * the UTF-8 JSON of one picked-out event each ({output, id, index, finish_reason, ...}): one read, one chunk.
 */
export async function collect(streamCall) {
  const response = await streamCall;
  const reader = response.data.getReader();
  const decoder = new TextDecoder();
  const chunks = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(JSON.parse(decoder.decode(value)));
  }
  return { status: response.status, chunks };
}

export async function run(scenarios, argv) {
  let tag = randomUUID().replaceAll("-", "").slice(0, 10);
  const names = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--tag") tag = argv[++i];
    else names.push(argv[i]);
  }
  const host = process.env.HL_E2E_HOST;
  const apiKey = process.env.HL_E2E_API_KEY;
  if (!host || !apiKey || names.length === 0) {
    process.stderr.write("usage: HL_E2E_HOST=... HL_E2E_API_KEY=... node SCRIPT.mjs [--tag TAG] SCENARIO|all ...\n");
    return 2;
  }
  const unknown = names.filter((name) => name !== "all" && !(name in scenarios));
  if (unknown.length) {
    process.stderr.write(`unknown scenarios: ${unknown.join(", ")}\n`);
    return 2;
  }
  const ctx = new Context(host, apiKey, tag);
  const chosen = names.includes("all") ? Object.keys(scenarios) : names;
  const results = {};
  for (const name of chosen) {
    try {
      results[name] = { ok: true, result: await scenarios[name](ctx) };
    } catch (error) {
      const detail = error instanceof HumanloopError ? ` ${JSON.stringify(error.toJSON())}` : "";
      results[name] = { ok: false, error: `${error?.stack ?? error}${detail}` };
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
  return 0;
}
