// Generation scenarios driven by the official humanloop TypeScript SDK 0.5.36: chat (plain and streamed),
// samples, sessions and parents, tools, errors. test_ts_sdk_chat.py runs this script and asserts on its output.
import { Humanloop } from "humanloop";

import { MOCK, apiError, collect, run, user } from "./runner.mjs";

const WEATHER_TOOL = {
  name: "get_weather",
  description: "Current weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

async function chatTemplate(ctx) {
  const response = await ctx.hl.chat({
    project: ctx.name("template"),
    messages: user("What is your name?"),
    model_config: {
      ...MOCK,
      temperature: 0.3,
      chat_template: [{ role: "system", content: "You are {{person}}, born in {{ year }}." }],
    },
    inputs: { person: "Ada Lovelace", year: 1815 },
  });
  return { status: response.status, body: response.data };
}

async function stream(ctx) {
  const params = {
    project: ctx.name("stream"),
    messages: user("tell me about streams"),
    model_config: { ...MOCK, chat_template: [{ role: "system", content: "Talk like {{who}}." }] },
    inputs: { who: "a pirate" },
  };
  // The SDK sets `stream: true` on the object it is given, so each call gets a copy.
  const plain = (await ctx.hl.chat({ ...params })).data;
  const streamed = await collect(ctx.hl.chatStream({ ...params }));
  // What a TypeScript user can read back afterwards (0.5.36 has no logs.get): the project's logs.
  const listed = (await ctx.hl.logs.list({ projectId: plain.project_id, size: 10 })).data;
  return { plain, ...streamed, listed };
}

async function streamUnicode(ctx) {
  // The SDK decodes each network read on its own (TextDecoder without {stream: true}), so a multi-byte
  // character split between two reads arrives as U+FFFD. The mock streams a word per event: the last word
  // here makes one ~120 KB event, read in several pieces even over loopback.
  const text = `naïve café ☃ ${"日本語🚀é".repeat(20000)}`;
  const params = { project: ctx.name("unicode"), messages: user(text), model_config: { ...MOCK } };
  const plain = (await ctx.hl.chat({ ...params })).data;
  const streamed = await collect(ctx.hl.chatStream({ ...params }));
  return { text, plain, ...streamed };
}

async function streamSamples(ctx) {
  const params = {
    project: ctx.name("samples"),
    messages: user("two please"),
    model_config: { ...MOCK },
    num_samples: 2,
  };
  const streamed = await collect(ctx.hl.chatStream({ ...params }));
  const plain = (await ctx.hl.chat({ ...params })).data;
  return { chunks: streamed.chunks, plain };
}

async function sessions(ctx) {
  const project = ctx.name("sessions");
  const chat = async (text, extra) => {
    const response = await ctx.hl.chat({ project, messages: user(text), model_config: { ...MOCK }, ...extra });
    return { session_id: response.data.session_id, id: response.data.data[0].id };
  };
  const first = await chat("turn one", { session_reference_id: ctx.name("conversation-a") });
  const second = await chat("turn two", { session_reference_id: ctx.name("conversation-a") });
  const other = await chat("elsewhere", { session_reference_id: ctx.name("conversation-b") });
  const byId = await chat("turn three", { session_id: first.session_id });
  const child = await chat("nested", { parent_id: first.id });
  const streamedChild = await collect(
    ctx.hl.chatStream({ project, messages: user("streamed child"), model_config: { ...MOCK }, parent_id: first.id }),
  );
  return { first, second, other, by_id: byId, child, streamed_child: streamedChild.chunks };
}

async function tools(ctx) {
  const params = {
    project: ctx.name("tools"),
    messages: user("Please call get_weather for Paris"),
    model_config: { ...MOCK, tools: [WEATHER_TOOL] },
  };
  const plain = (await ctx.hl.chat({ ...params })).data;
  const streamed = await collect(ctx.hl.chatStream({ ...params }));
  return { plain, chunks: streamed.chunks };
}

async function errors(ctx) {
  const project = ctx.name("errors");
  const exists = await ctx.hl.chat({ project, messages: user("exists"), model_config: { ...MOCK } });
  const realProject = exists.data.project_id;
  const chat =
    ({ text = "hi", ...extra }, client = ctx.hl) =>
    () =>
      client.chat({ messages: user(text), model_config: { ...MOCK }, ...extra });
  const stranger = new Humanloop({ apiKey: "lg_not-a-real-key", basePath: ctx.host });
  return {
    missing_variable: await apiError(
      chat({
        project,
        model_config: { ...MOCK, chat_template: [{ role: "system", content: "Hi {{customer}}" }] },
        inputs: { someone_else: "x" },
      }),
    ),
    project_and_project_id: await apiError(chat({ project, project_id: realProject })),
    unknown_project_id: await apiError(chat({ project_id: "pr_doesnotexist0000000000" })),
    wrong_api_key: await apiError(chat({ project }, stranger)),
    unknown_session_id: await apiError(chat({ project, session_id: "sesh_doesnotexist000000000" })),
    unknown_parent_id: await apiError(chat({ project, parent_id: "data_doesnotexist000000000" })),
    provider_429: await apiError(chat({ project, text: "mock-error:429" })),
  };
}

async function streamError(ctx) {
  // A provider refusal before the first token arrives as the HTTP status, which the SDK throws.
  const params = { project: ctx.name("stream-error"), messages: user("mock-error:503"), model_config: { ...MOCK } };
  return apiError(() => collect(ctx.hl.chatStream(params)));
}

async function trailingSlash(ctx) {
  // The SDK appends each path to basePath as given: "/v4/" + "/chat" asks for "/v4//chat".
  const hl = new Humanloop({ apiKey: ctx.apiKey, basePath: `${ctx.host}/` });
  const params = { project: ctx.name("slash"), messages: user("a slash too many"), model_config: { ...MOCK } };
  const plain = (await hl.chat({ ...params })).data;
  const streamed = await collect(hl.chatStream({ ...params }));
  const project = (await hl.projects.get({ id: plain.project_id })).data;
  return { plain, chunks: streamed.chunks, project };
}

const SCENARIOS = {
  chat_template: chatTemplate,
  stream,
  stream_unicode: streamUnicode,
  stream_samples: streamSamples,
  sessions,
  tools,
  errors,
  stream_error: streamError,
  trailing_slash: trailingSlash,
};

process.exitCode = await run(SCENARIOS, process.argv.slice(2));
