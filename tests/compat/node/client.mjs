// The openai npm package against a Flotilla gateway. Prints one JSON object with what it saw;
// tests/compat/test_openai_node.py asserts on it. Usage:
//   node client.mjs chat   BASE_URL TOKEN MODEL   content, usage, finish reasons, raw headers
//   node client.mjs errors BASE_URL TOKEN WRONG   401 and 404 as the SDK's exception classes
//   node client.mjs limit  BASE_URL TIGHT MODEL   429 (no retries), then 2 retries after Retry-After
import OpenAI from "openai";

const [scenario, baseURL, apiKey, arg] = process.argv.slice(2);
const messages = [{ role: "user", content: "Name three colours." }];

function client(key, options = {}) {
  return new OpenAI({ baseURL, apiKey: key, maxRetries: 0, timeout: 300_000, ...options });
}

function describeError(err) {
  return {
    classes: Object.entries({
      APIError: OpenAI.APIError,
      AuthenticationError: OpenAI.AuthenticationError,
      NotFoundError: OpenAI.NotFoundError,
      RateLimitError: OpenAI.RateLimitError,
      BadRequestError: OpenAI.BadRequestError,
    }).filter(([, cls]) => err instanceof cls).map(([name]) => name),
    status: err.status,
    code: err.code ?? null,
    param: err.param ?? null,
    requestID: err.requestID ?? null,
    retryAfter: err.headers?.get?.("retry-after") ?? null,
    message: err.message,
  };
}

async function caught(promise) {
  try {
    await promise;
    return { classes: [], status: null, message: "no error" };
  } catch (err) {
    return describeError(err);
  }
}

async function chat(model) {
  const c = client(apiKey);
  const models = (await c.models.list()).data.map((m) => m.id);
  const whole = await c.chat.completions.create({ model, messages, max_tokens: 8 });
  const chunks = [];
  const stream = await c.chat.completions.create({
    model, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true },
  });
  for await (const chunk of stream) chunks.push(chunk);
  const withChoices = chunks.filter((ch) => ch.choices.length > 0);
  const { data: completion, response } = await c.completions
    .create({ model, prompt: "Once upon a time", max_tokens: 6 })
    .withResponse();
  return {
    models,
    whole: {
      content: whole.choices[0].message.content,
      role: whole.choices[0].message.role,
      finish: whole.choices[0].finish_reason,
      usage: whole.usage,
    },
    stream: {
      text: withChoices.map((ch) => ch.choices[0].delta.content ?? "").join(""),
      finishes: withChoices.map((ch) => ch.choices[0].finish_reason),
      usage: chunks.filter((ch) => ch.usage).map((ch) => ch.usage),
      lastHasChoices: chunks.length > 0 && chunks[chunks.length - 1].choices.length > 0,
    },
    completion: {
      text: completion.choices[0].text,
      finish: completion.choices[0].finish_reason,
      usage: completion.usage,
      requestId: response.headers.get("x-request-id"),
      contentType: response.headers.get("content-type"),
    },
  };
}

async function errors(wrong) {
  return {
    unauthorized: await caught(client(wrong).chat.completions.create({ model: "chat", messages })),
    unknownModel: await caught(client(apiKey).chat.completions.create({ model: "no-such-model", messages })),
    badRequest: await caught(client(apiKey).chat.completions.create({ model: "chat", messages: [] })),
  };
}

async function limit(model) {
  const once = await caught(client(apiKey).chat.completions.create({ model, messages }));
  const sent = [];
  const timedFetch = (url, init) => {
    sent.push(performance.now() / 1000);
    return fetch(url, init);
  };
  const retried = await caught(
    client(apiKey, { maxRetries: 2, fetch: timedFetch }).chat.completions.create({ model, messages }),
  );
  return { once, retried, sent };
}

const scenarios = { chat, errors, limit };
const result = await scenarios[scenario](arg);
process.stdout.write(JSON.stringify(result));
