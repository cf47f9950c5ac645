// TypeScript SDK 0.5.36's completeDeployedNoProxy: the SDK reads the deployed config from loopgate, calls
// OpenAI itself (the `openai` package, which honours OPENAI_BASE_URL), returns, and logs the call to loopgate
// in the background. test_ts_sdk_no_proxy.py points OPENAI_BASE_URL at fakellm on loopback.
import { configCache } from "humanloop/dist/complete-deployed.js";

import { run } from "./runner.mjs";

async function noProxy(ctx) {
  const upstream = new URL(process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1");
  if (upstream.hostname !== "127.0.0.1") throw new Error(`refusing to call ${upstream}: tests stay on loopback`);
  const hl = ctx.hl;
  const registered = (
    await hl.modelConfigs.register({
      project: ctx.name("no-proxy"),
      provider: "openai",
      model: "gpt-4", // one of the chat models the no-proxy path accepts
      prompt_template: "Say {{word}} please.",
      temperature: 0.2,
    })
  ).data;
  const response = await hl.completeDeployedNoProxy({
    project_id: registered.project_id,
    inputs: { word: "hello" },
    provider_api_keys: { openai: "sk-fake" },
    metadata: { run: ctx.tag },
    session_reference_id: ctx.name("session"),
  });
  // The log is posted without being awaited: wait until it is listed (or give up after ten seconds).
  let logs = [];
  for (let attempt = 0; attempt < 100 && logs.length === 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    logs = (await hl.logs.list({ projectId: registered.project_id })).data.records;
  }
  configCache.dispose(); // its refresh timer would keep node running
  return { registered, response, logs };
}

process.exitCode = await run({ no_proxy: noProxy }, process.argv.slice(2));
