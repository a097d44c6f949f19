// OpenAI's Node SDK (a client this project did not write) against a running `spacetime serve`:
// every Videos call it has, and the errors it raises. Exits 1 when any answer is not the expected one.
//
//   spacetime serve --port 7860 &
//   mkdir -p /tmp/sdk && cd /tmp/sdk && npm install openai && node /path/to/bench/serve_openai_node.mjs http://127.0.0.1:7860/v1 still.png
//
// The SDK is resolved from the current directory (where npm installed it), not from this file's.
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(process.cwd() + '/');
const { OpenAI, toFile } = require('openai');
const [baseURL = 'http://127.0.0.1:7860/v1', still] = process.argv.slice(2);
const client = new OpenAI({ apiKey: 'unused', baseURL, maxRetries: 0, timeout: 120_000 });
let failures = 0;

async function expect(name, want, call) {
  // want: 'ok', or the HTTP status the SDK's error should carry
  let got, detail;
  try {
    detail = await call();
    got = 'ok';
  } catch (e) {
    got = e.status ?? 'threw';
    detail = e.error ?? e.message;
  }
  const pass = got === want;
  failures += pass ? 0 : 1;
  console.log(`${pass ? 'PASS' : 'FAIL'} ${name}: ${got} ${JSON.stringify(detail).slice(0, 160)}`);
  return got === 'ok' ? detail : undefined;
}

async function done(id) {
  for (let i = 0; i < 600; i++) {
    const v = await client.videos.retrieve(id);
    if (v.status === 'completed' || v.status === 'failed') return v;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${id} did not finish`);
}

async function bytes(response) {
  return Buffer.from(await response.arrayBuffer());
}

const video = await expect('create (multipart, as this SDK always sends)', 'ok',
  () => client.videos.create({ prompt: 'a red ball bounces to the right', model: 'sora-2', seconds: '4' }));
if (video) {
  const v = await expect('retrieve until completed', 'ok', async () => {
    const d = await done(video.id);
    if (d.status !== 'completed') throw new Error(JSON.stringify(d.error));
    return d;
  });
  const mp4 = await expect('downloadContent video', 'ok', async () => bytes(await client.videos.downloadContent(video.id)));
  await expect('downloadContent thumbnail', 'ok',
    async () => (await bytes(await client.videos.downloadContent(video.id, { variant: 'thumbnail' }))).length);
  await expect('downloadContent spritesheet', 'ok',
    async () => (await bytes(await client.videos.downloadContent(video.id, { variant: 'spritesheet' }))).length);
  await expect('list (auto-paging, limit 1)', 'ok', async () => {
    const ids = [];
    for await (const x of client.videos.list({ limit: 1 })) ids.push(x.id);
    if (!ids.includes(video.id)) throw new Error('not listed');
    return ids.length;
  });
  for (const [name, call] of [
    ['remix', () => client.videos.remix(video.id, { prompt: 'a blue ball bounces to the right' })],
    ['edit with video: {id} (a form field video[id])', () => client.videos.edit({ prompt: 'a green ball', video: { id: video.id } })],
    ['edit with an uploaded video', async () => client.videos.edit({ prompt: 'a green ball', video: await toFile(mp4, 'in.mp4', { type: 'video/mp4' }) })],
    ['extend with video: {id}', () => client.videos.extend({ prompt: 'it keeps going', seconds: '4', video: { id: video.id } })],
    ...(still ? [['create with input_reference (a stream)', () => client.videos.create({ prompt: 'it rolls to the right', input_reference: fs.createReadStream(still) })]] : []),
  ]) {
    const job = await expect(name, 'ok', call);
    if (job) await expect(`${name}: completed`, 'ok', async () => {
      const d = await done(job.id);
      if (d.status !== 'completed') throw new Error(JSON.stringify(d.error));
      return d.mode;
    });
  }
  await expect('create with input_reference {image_url} (not fetched)', 400,
    () => client.videos.create({ prompt: 'a ball', input_reference: { image_url: 'https://example.com/a.png' } }));
  await expect('size over the limit', 400, () => client.videos.create({ prompt: 'a ball', size: '720x1280' }));
  await expect('createCharacter (not supported)', 404,
    async () => client.videos.createCharacter({ name: 'bob', video: await toFile(mp4, 'in.mp4', { type: 'video/mp4' }) }));
  await expect('getCharacter (not supported)', 404, () => client.videos.getCharacter('char_123'));
  await expect('delete', 'ok', () => client.videos.delete(video.id));
  await expect('retrieve a deleted video', 404, () => client.videos.retrieve(video.id));
}
console.log(failures ? `${failures} unexpected answer(s)` : 'every answer as expected');
process.exit(failures ? 1 : 0);
