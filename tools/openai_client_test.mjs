// End-to-end check of `t6 serve` with the official OpenAI JavaScript client (openai@6.49.0,
// fetched by tools/fetch-openai-npm.sh). Run by tests/test_cli_serve_openai.cpp against a server
// of the tiny byte-level test checkpoint:
//   node tools/openai_client_test.mjs BASE_URL OPENAI_PACKAGE_DIR
// Checks completions with n, echo + logprobs, prompt scoring (max_tokens 0), streaming, chat
// (plain and streamed), X-Request-Id and a 400 error; prints one JSON object as its last line and
// exits 1 at the first failed check.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [baseURL, pkgDir] = process.argv.slice(2);
if (!baseURL || !pkgDir) {
  console.error('usage: node openai_client_test.mjs BASE_URL OPENAI_PACKAGE_DIR');
  process.exit(2);
}
const { default: OpenAI } = await import(pathToFileURL(path.join(pkgDir, 'index.mjs')).href);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 30000 });
const model = 'tiny';
let checks = 0;

function check(cond, what) {
  if (!cond) {
    console.error(`openai_client_test: FAILED: ${what}`);
    process.exit(1);
  }
  checks++;
}

// Completions with n: one choice per index, seeded sampling.
const many = await client.completions.create({
  model, prompt: 'Once upon', max_tokens: 8, n: 3, temperature: 1, seed: 7,
});
check(many.object === 'text_completion', 'completions object');
check(many.choices.length === 3, `n=3 gives 3 choices (got ${many.choices.length})`);
check(many.choices.every((c, i) => c.index === i), 'choices are indexed 0..n-1');
check(many.usage.completion_tokens > 0 && many.usage.completion_tokens <= 24, 'usage sums choices');
const again = await client.completions.create({
  model, prompt: 'Once upon', max_tokens: 8, n: 3, temperature: 1, seed: 7,
});
check(JSON.stringify(again.choices.map((c) => c.text)) ===
  JSON.stringify(many.choices.map((c) => c.text)), 'the same seed gives the same texts');

// Echo + logprobs: the legacy shape, the prompt's tokens first.
const { data: echoed, request_id } = await client.completions.create({
  model, prompt: 'Hello', max_tokens: 4, temperature: 0, echo: true, logprobs: 2,
}).withResponse();
check(typeof request_id === 'string' && request_id.length > 0, 'x-request-id header');
const lp = echoed.choices[0].logprobs;
check(echoed.choices[0].text.startsWith('Hello'), 'echo puts the prompt first');
check(lp.tokens.length === 9, `5 prompt + 4 generated tokens (got ${lp.tokens.length})`);
check(lp.token_logprobs[0] === null && lp.top_logprobs[0] === null, 'first prompt token: null');
check(lp.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0), 'logprobs <= 0');
check(lp.top_logprobs.slice(1).every((d) => Object.keys(d).length >= 1 &&
  Object.keys(d).length <= 2), 'top_logprobs: at most 2 alternatives');
check(lp.text_offset[0] === 0 && lp.text_offset[5] === 5, 'text_offset counts characters');
check(lp.tokens.join('') === echoed.choices[0].text, 'the tokens spell the text');

// Scoring only (lm-evaluation-harness's loglikelihood with max_tokens 0): token-id prompts.
const scored = await client.completions.create({
  model, prompt: [[72, 101, 108, 108, 111], [72, 105]], max_tokens: 0, temperature: 0,
  echo: true, logprobs: 1,
});
check(scored.choices.length === 2, 'a batch of two token-id prompts');
check(scored.choices[0].text === 'Hello' && scored.choices[1].text === 'Hi', 'echoed prompts');
check(scored.choices[0].logprobs.token_logprobs[1] ===
  lp.token_logprobs[1], 'the same prompt scores the same');
check(scored.usage.completion_tokens === 0, 'no completion tokens');

// Streaming: the chunks concatenate to the non-streamed text.
const plain = await client.completions.create({
  model, prompt: 'Once upon', max_tokens: 12, temperature: 0,
});
let streamed = '';
let finish = null;
for await (const chunk of await client.completions.create({
  model, prompt: 'Once upon', max_tokens: 12, temperature: 0, stream: true,
})) {
  for (const c of chunk.choices) {
    streamed += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(streamed === plain.choices[0].text, 'streamed completion equals the non-streamed one');
check(finish === plain.choices[0].finish_reason, 'streamed finish_reason');

// Chat, plain and streamed.
const messages = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Say something.' },
];
const chat = await client.chat.completions.create({
  model, messages, max_tokens: 10, temperature: 0,
});
check(chat.object === 'chat.completion', 'chat object');
check(chat.choices[0].message.role === 'assistant', 'assistant message');
check(['stop', 'length'].includes(chat.choices[0].finish_reason), 'chat finish_reason');
let content = '';
let role = null;
let chatFinish = null;
for await (const chunk of await client.chat.completions.create({
  model, messages, max_tokens: 10, temperature: 0, stream: true,
  stream_options: { include_usage: true },
})) {
  check(chunk.object === 'chat.completion.chunk', 'chunk object');
  for (const c of chunk.choices) {
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) content += c.delta.content;
    if (c.finish_reason) chatFinish = c.finish_reason;
  }
}
check(role === 'assistant', 'the first delta has the role');
check(content === chat.choices[0].message.content, 'streamed chat equals the non-streamed one');
check(chatFinish === chat.choices[0].finish_reason, 'streamed chat finish_reason');

// A bad request: the client raises BadRequestError with the OpenAI error body.
let status = 0;
let param = null;
try {
  await client.completions.create({ model, prompt: 'x', n: 99 });
} catch (e) {
  status = e.status;
  param = e.param;
}
check(status === 400 && param === 'n', `n=99: 400 naming n (got ${status}, ${param})`);

console.log(JSON.stringify({ checks, ok: true }));
