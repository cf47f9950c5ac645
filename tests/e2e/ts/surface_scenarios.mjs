// The rest of the v4 surface as the official humanloop TypeScript SDK 0.5.36 exposes it: projects, model
// configs, deployments and the deployed / by-config generation variants, completions, logs, feedback, sessions,
// datasets and datapoints, evaluators and client-run evaluations. test_ts_sdk_surface.py asserts on the output.
//
// 0.5.36 builds a request body from the same object that holds the path parameters, so PATCH /logs/{id} also
// carries {"id": ...}, POST /projects/{project_id}/datasets carries {"projectId": ...}, and so on.
import { MOCK, apiError, collect, run, user } from "./runner.mjs";

const TEMPLATE = [{ role: "system", content: "You are {{persona}}." }];
const PROMPT = { ...MOCK, prompt_template: "Tell me about {{topic}}." };

async function projects(ctx) {
  const hl = ctx.hl;
  const name = ctx.name("projects");
  // feedback_types at creation: in 0.5.36's CreateProjectRequest, gone from the 4.0.1 spec
  const created = (await hl.projects.create({ name, feedback_types: [{ type: "mood", class: "text" }] })).data;
  const got = (await hl.projects.get({ id: created.id })).data;
  const renamed = (await hl.projects.update({ id: created.id, name: `${name}-renamed` })).data;
  for (const suffix of ["b", "a"]) await hl.projects.create({ name: ctx.name(`projects-${suffix}`) });
  const listed = (await hl.projects.list({ filter: ctx.tag, sortBy: "name", order: "asc", size: 2 })).data;
  const secondPage = (await hl.projects.list({ filter: ctx.tag, sortBy: "name", order: "asc", size: 2, page: 1 }))
    .data;
  const feedbackType = (
    await hl.projects.createFeedbackType({
      id: created.id,
      type: "tone",
      class: "select",
      values: [{ value: "warm", sentiment: "positive" }],
    })
  ).data;
  const afterFeedbackType = (await hl.projects.get({ id: created.id })).data;
  const duplicate = await apiError(() => hl.projects.create({ name: `${name}-renamed` }));
  const deleted = await hl.projects.delete({ id: created.id });
  return {
    created,
    got,
    renamed,
    listed,
    second_page: secondPage,
    feedback_type: feedbackType,
    feedback_types_after: afterFeedbackType.feedback_types.map((t) => t.type),
    duplicate,
    deleted_status: deleted.status,
    gone: await apiError(() => hl.projects.get({ id: created.id })),
  };
}

async function register(ctx, project, config) {
  return (await ctx.hl.modelConfigs.register({ project, ...MOCK, ...config })).data;
}

async function modelConfigs(ctx) {
  const hl = ctx.hl;
  const project = ctx.name("model-configs");
  const registered = await register(ctx, project, { chat_template: TEMPLATE, temperature: 0.4, name: "reg-v1" });
  const again = await register(ctx, project, { chat_template: TEMPLATE, temperature: 0.4 });
  const newer = await register(ctx, project, { chat_template: TEMPLATE, temperature: 0.8 });
  const configId = registered.config.id;
  const serialized = (
    await hl.modelConfigs.serialize({
      model: "gpt-4o",
      provider: "openai",
      temperature: 0.7,
      chat_template: TEMPLATE,
      endpoint: "chat",
    })
  ).data;
  return {
    registered,
    again,
    newer,
    got: (await hl.modelConfigs.get({ id: configId })).data,
    exported: (await hl.modelConfigs.export({ id: configId })).data,
    serialized,
    deserialized: (await hl.modelConfigs.deserialize({ config: serialized })).data,
    configs: (await hl.projects.listConfigs({ id: registered.project_id })).data,
    // the SDK's own convenience wrapper around the same call
    configs_custom: (await hl.listConfigs({ projectId: registered.project_id })).data,
    active: (await hl.projects.getActiveConfig({ id: registered.project_id })).data,
    missing: await apiError(() => hl.modelConfigs.get({ id: "config_doesnotexist0000000" })),
  };
}

async function deployments(ctx) {
  const hl = ctx.hl;
  const project = ctx.name("deploy");
  const first = await register(ctx, project, { chat_template: TEMPLATE, temperature: 0.1 });
  const second = await register(ctx, project, { chat_template: TEMPLATE, temperature: 0.2 });
  const projectId = first.project_id;
  const environments = (await hl.projects.listDeployedConfigs({ id: projectId })).data;
  const production = environments.find((env) => env.environment_tag === "default").environment_id;
  const deployed = (
    await hl.projects.deployConfig({ projectId, config_id: second.config.id, environments: [{ id: production }] })
  ).data;
  const chat = (await hl.chatDeployed({ project, messages: user("which one?"), inputs: { persona: "Grace" } })).data;
  const byId = (
    await hl.chatModelConfiguration({
      model_config_id: first.config.id,
      messages: user("by id"),
      inputs: { persona: "Alan" },
    })
  ).data;
  const streamed = await collect(
    hl.chatDeployedStream({ project_id: projectId, messages: user("stream it"), inputs: { persona: "Ida" } }),
  );
  const streamedById = await collect(
    hl.chatModelConfigurationStream({
      model_config_id: first.config.id,
      messages: user("stream by id"),
      inputs: { persona: "Ada" },
    }),
  );
  const deactivated = (await hl.projects.deactivateConfig({ id: projectId })).data;
  const nothingDeployed = await apiError(() => hl.chatDeployed({ project, messages: user("x"), inputs: {} }));
  const redeployed = (await hl.projects.deployConfig({ projectId, config_id: first.config.id })).data;
  const removed = (await hl.projects.deleteDeployedConfig({ projectId, environmentId: production })).data;
  return {
    first,
    second,
    environments,
    deployed,
    chat,
    by_id: byId,
    streamed: streamed.chunks,
    streamed_by_id: streamedById.chunks,
    deactivated,
    nothing_deployed: nothingDeployed,
    redeployed,
    removed,
  };
}

async function completions(ctx) {
  const hl = ctx.hl;
  const project = ctx.name("complete");
  const params = { project, model_config: { ...PROMPT }, inputs: { topic: "tides" } };
  const completed = (
    await hl.complete({ ...params, num_samples: 2, logprobs: 1, suffix: "THE END", user: "e2e-user" })
  ).data;
  const plain = (await hl.complete({ ...params })).data;
  const streamed = await collect(hl.completeStream({ ...params }));
  const registered = await register(ctx, ctx.name("complete-deployed"), { prompt_template: PROMPT.prompt_template });
  const rivers = { project: registered.project_name, inputs: { topic: "rivers" } };
  const deployed = (await hl.completeDeployed({ ...rivers })).data;
  const deployedStream = await collect(hl.completeDeployedStream({ ...rivers }));
  const byId = (
    await hl.completeModelConfiguration({ model_config_id: registered.config.id, inputs: { topic: "lakes" } })
  ).data;
  const byIdStream = await collect(
    hl.completeModelConfigurationStream({ model_config_id: registered.config.id, inputs: { topic: "lakes" } }),
  );
  return {
    completed,
    plain,
    chunks: streamed.chunks,
    registered,
    deployed,
    deployed_chunks: deployedStream.chunks,
    by_id: byId,
    by_id_chunks: byIdStream.chunks,
    missing_input: await apiError(() => hl.complete({ ...params, inputs: {} })),
  };
}

async function logs(ctx) {
  const hl = ctx.hl;
  const project = ctx.name("logs");
  const reference = ctx.name("ref");
  const created = (
    await hl.log({
      project,
      config: { ...MOCK, temperature: 0.1 },
      inputs: { city: "Oslo" },
      messages: user("Weather in Oslo?"),
      output: "Rainy",
      reference_id: reference,
      metadata: { team: "weather" },
      source: "sdk",
      duration: 0.5,
      created_at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), // sent as "2024-01-02T03:04:05.000Z"
      feedback: { type: "rating", value: "good" },
    })
  ).data;
  const batch = (
    await hl.log([
      { project, config: { ...MOCK }, output: "first of two", inputs: { city: "Rome" } },
      { project, config: { ...MOCK }, output: "second of two" },
    ])
  ).data;
  const byReference = (await hl.logs.updateByRef({ referenceId: reference, output: "Sunny" })).data;
  const byId = (await hl.logs.update({ id: created.id, error: "late error", duration: 1.25 })).data;
  const projectId = created.project_id;
  const firstPage = (await hl.logs.list({ projectId, size: 2 })).data;
  const secondPage = (await hl.logs.list({ projectId, size: 2, page: 1 })).data;
  const searched = (await hl.logs.list({ projectId, search: "OSLO" })).data;
  // a Date is sent as its UTC day ("2024-01-02"), a string as it is
  const noon = new Date(Date.UTC(2024, 0, 2, 12));
  const dated = (await hl.logs.list({ projectId, startDate: noon, endDate: "2024-01-02" })).data;
  const metadata = (await hl.logs.list({ projectId, metadataSearch: "weather" })).data;
  // The list methods return the SDK's Page: next() while hasNext(), which is page * size < total (a page
  // count from 1) while loopgate's logs pages start at 0, as v4's do: the walk ends on one empty page.
  let walking = await hl.logs.list({ projectId, size: 2 });
  const walked = [walking.data.records.map((record) => record.id)];
  while (walking.hasNext() && walked.length < 10) {
    walking = await walking.next();
    walked.push(walking.data.records.map((record) => record.id));
  }
  const exported = (await hl.projects.export({ id: projectId })).data;
  const deleted = await hl.logs.delete({ id: batch.map((item) => item.id) });
  return {
    created,
    batch,
    by_reference: byReference,
    by_id: byId,
    first_page: firstPage,
    second_page: secondPage,
    searched: searched.records.map((record) => record.id),
    dated: dated.records.map((record) => record.id),
    metadata: metadata.records.map((record) => record.id),
    walked,
    exported,
    deleted_status: deleted.status,
    after: (await hl.logs.list({ projectId })).data.records.map((record) => record.id),
    unknown_reference: await apiError(() => hl.logs.updateByRef({ referenceId: ctx.name("missing"), output: "x" })),
  };
}

async function feedback(ctx) {
  const hl = ctx.hl;
  const log = (await hl.log({ project: ctx.name("feedback"), config: { ...MOCK }, output: "rate me" })).data;
  const one = (await hl.feedback({ type: "rating", value: "good", data_id: log.id, user: "reviewer@example.com" }))
    .data;
  const many = (
    await hl.feedback([
      { type: "comment", value: "Clear answer", data_id: log.id },
      { type: "action", value: ["copied"], data_id: log.id },
    ])
  ).data;
  const unset = (await hl.feedback({ type: "rating", unset: true, data_id: log.id })).data;
  return {
    log_id: log.id,
    one,
    many,
    unset,
    bad_label: await apiError(() => hl.feedback({ type: "rating", value: "meh", data_id: log.id })),
    unknown_log: await apiError(() =>
      hl.feedback({ type: "rating", value: "good", data_id: "data_doesnotexist000000000" }),
    ),
  };
}

async function sessions(ctx) {
  const hl = ctx.hl;
  const project = ctx.name("sessions");
  const created = (await hl.sessions.create()).data;
  const first = (
    await hl.log({ project, config: { ...MOCK }, session_id: created.id, inputs: { turn: 1 }, output: "one" })
  ).data;
  const second = (
    await hl.log({ project, config: { ...MOCK }, session_id: created.id, parent_id: first.id, output: "two" })
  ).data;
  const child = (
    await hl.chat({ project, model_config: { ...MOCK }, messages: user("a child chat"), parent_id: second.id })
  ).data;
  return {
    created,
    first,
    second,
    child,
    got: (await hl.sessions.get({ id: created.id })).data,
    listed: (await hl.sessions.list({ projectId: first.project_id })).data,
    missing: await apiError(() => hl.sessions.get({ id: "sesh_doesnotexist000000000" })),
  };
}

async function datasets(ctx) {
  const hl = ctx.hl;
  const project = (await hl.projects.create({ name: ctx.name("datasets") })).data;
  const created = (await hl.datasets.create({ projectId: project.id, name: "golden", description: "trusted" }))
    .data;
  const one = (
    await hl.datasets.createDatapoint({
      datasetId: created.id,
      requestBody: { inputs: { city: "Paris" }, messages: user("Capital of France?"), target: { answer: "Paris" } },
    })
  ).data;
  const many = (
    await hl.datasets.createDatapoint({
      datasetId: created.id,
      requestBody: [{ inputs: { city: "Rome" } }, { target: { answer: "Madrid" } }],
    })
  ).data;
  const chat = (
    await hl.chat({
      project: project.name,
      model_config: { ...MOCK, chat_template: [{ role: "system", content: "You know {{city}}." }] },
      inputs: { city: "Oslo" },
      messages: user("Where is it?"),
    })
  ).data;
  const fromLogs = (
    await hl.datasets.createDatapoint({ datasetId: created.id, requestBody: { log_ids: [chat.data[0].id] } })
  ).data;
  const page = (await hl.datasets.listDatapoints({ datasetId: created.id, size: 3 })).data;
  const updated = (await hl.datasets.update({ id: created.id, name: "golden-v2" })).data;
  const got = (await hl.datasets.get({ id: created.id })).data;
  const datapoint = (await hl.datapoints.get({ id: one[0].id })).data;
  const datapointUpdated = (await hl.datapoints.update({ id: many[0].id, target: { answer: "Rome" } })).data;
  const listed = (await hl.datasets.listAllForProject({ projectId: project.id })).data;
  const datapointsDeleted = await hl.datapoints.delete([many[1].id]);
  const afterDelete = (await hl.datasets.listDatapoints({ datasetId: created.id, size: 50 })).data;
  const deleted = await hl.datasets.delete({ id: created.id });
  return {
    project_id: project.id,
    created,
    one,
    many,
    log_id: chat.data[0].id,
    from_logs: fromLogs,
    page,
    updated,
    got,
    datapoint,
    datapoint_updated: datapointUpdated,
    listed,
    datapoints_deleted_status: datapointsDeleted.status,
    after_delete: afterDelete.records.map((record) => record.id),
    deleted_status: deleted.status,
    gone: await apiError(() => hl.datasets.get({ id: created.id })),
  };
}

async function evaluations(ctx) {
  const hl = ctx.hl;
  const registered = await register(ctx, ctx.name("evaluations"), {});
  const projectId = registered.project_id;
  const exact = (
    await hl.evaluators.create({
      name: "exact",
      description: "output equals the target",
      arguments_type: "target_required",
      return_type: "boolean",
      type: "external",
    })
  ).data;
  const renamed = (await hl.evaluators.update({ id: exact.id, description: "output equals the answer" })).data;
  const dataset = (await hl.datasets.create({ projectId, name: "sums", description: "" })).data;
  const datapoints = (
    await hl.datasets.createDatapoint({
      datasetId: dataset.id,
      requestBody: [
        { inputs: { q: "1+1" }, target: { answer: "2" } },
        { inputs: { q: "2+2" }, target: { answer: "4" } },
      ],
    })
  ).data;
  const request = { projectId, config_id: registered.config.id, dataset_id: dataset.id, evaluator_ids: [exact.id] };
  // 0.5.36's CreateEvaluationRequest has no hl_generated: left out, loopgate runs the evaluation itself.
  const serverRun = (await hl.evaluations.create({ ...request })).data;
  const created = (await hl.evaluations.create({ ...request, hl_generated: false })).data;
  // 0.5.36 has no evaluations.log (POST /evaluations/{id}/log came with the client-run evaluations of later
  // SDKs), so the generation is posted the way a 0.5.36 user has to: by hand, with the same host and key.
  const answers = { "1+1": "2", "2+2": "5" };
  const results = [];
  const logs = [];
  for (const datapoint of datapoints) {
    const output = answers[datapoint.inputs.q];
    const posted = await fetch(`${ctx.host}/evaluations/${created.id}/log`, {
      method: "POST",
      headers: { "X-API-KEY": ctx.apiKey, "Content-Type": "application/json" },
      body: JSON.stringify({ datapoint_id: datapoint.id, log: { inputs: datapoint.inputs, output } }),
    });
    const logged = await posted.json();
    logs.push(logged);
    const result = (
      await hl.evaluations.logResult({
        evaluationRunExternalId: created.id,
        log_id: logged.id,
        evaluator_id: exact.id,
        result: output === datapoint.target.answer,
      })
    ).data;
    results.push(result);
  }
  const completed = (await hl.evaluations.updateStatus({ id: created.id, status: "completed" })).data;
  return {
    project_id: projectId,
    exact,
    renamed,
    evaluators: (await hl.evaluators.list()).data.map((evaluator) => evaluator.id),
    got_evaluator: (await hl.evaluators.get({ id: exact.id })).data,
    server_run: { id: serverRun.id, status: serverRun.status, evaluators: serverRun.evaluators.map((e) => e.id) },
    created,
    logs,
    results,
    completed,
    read_back: (await hl.evaluations.get({ id: created.id, evaluatorAggregates: true })).data,
    snapshot: (await hl.evaluations.listDatapoints({ id: created.id })).data,
    for_project: (await hl.evaluations.listAllForProject({ projectId })).data.map((evaluation) => evaluation.id),
  };
}

const SCENARIOS = {
  projects,
  model_configs: modelConfigs,
  deployments,
  completions,
  logs,
  feedback,
  sessions,
  datasets,
  evaluations,
};

process.exitCode = await run(SCENARIOS, process.argv.slice(2));
