// The pure settings mapping of the extension, under Node's test runner (no VS Code needed).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as s from '../out/settings.js';

const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
const props = pkg.contributes.configuration.properties;

/** A getter like WorkspaceConfiguration.get over the package.json defaults plus overrides. */
function getter(overrides = {}) {
  return (key) => (key in overrides ? overrides[key] : props[`dgLsp.${key}`]?.default);
}

test('every server setting has a dgLsp.* setting and vice versa', () => {
  const contributed = Object.keys(props)
    .map((k) => k.replace(/^dgLsp\./, ''))
    .filter((k) => !k.startsWith('server.') && !k.startsWith('trace.'));
  assert.deepEqual(contributed.sort(), Object.keys(s.SERVER_SETTINGS).sort());
});

test('unset settings are not sent (the server keeps its defaults and command-line values)', () => {
  assert.deepEqual(s.toServerSettings(() => undefined), {});
  assert.deepEqual(s.toServerSettings((k) => (k === 'seed' ? 4 : undefined)), { seed: 4 });
});

test('package.json defaults, when sent, are the server defaults', () => {
  assert.deepEqual(s.toServerSettings(getter()), {
    device: 'auto', dtype: 'auto', promptLayout: 'auto', maxTokens: 64, contextTokens: 0, crossFile: 'auto', crossFileTokens: 0,
    denoisingSteps: 0, rewriteStrength: 0.5, holeTokens: 16, languages: [], inlineCompletion: true,
    completionItems: true, multiline: true, threads: 0, prefetch: true, minConfidence: 0.15, alternatives: 3,
    automaticAlternatives: 1, seed: 0, tuned: 'auto', tuneMinutes: 10, memory: 'auto', memoryDocument: true,
    memoryOpenDocuments: true, memoryWorkspace: true, memoryWorkspaceTokens: 4000000, trustRemoteCode: false,
  });
});

test('values are passed through; an empty model is not sent', () => {
  const out = s.toServerSettings(getter({ model: '/ckpt', maxTokens: 8, languages: ['python', '', 3], device: 'cuda:1' }));
  assert.equal(out.model, '/ckpt');
  assert.equal(out.maxTokens, 8);
  assert.equal(out.device, 'cuda:1');
  assert.deepEqual(out.languages, ['python']);
  assert.ok(!('model' in s.toServerSettings(getter({ model: '' }))), 'empty model: not set');
  // client-only settings never reach the server
  assert.ok(!('server.path' in out) && !('server' in out) && !('trace.server' in out));
});

test('didChangeConfiguration nests the settings under dgLsp (unwrapped by the server)', () => {
  assert.deepEqual(s.didChangeConfigurationSettings(getter({ seed: 3 })).dgLsp.seed, 3);
});

test('server command: dg-lsp --stdio from PATH by default, or the configured path + args', () => {
  assert.deepEqual(s.serverCommand(getter()), { command: 'dg-lsp', args: ['--stdio'] });
  assert.deepEqual(s.serverCommand(getter({ 'server.path': '  ' })), { command: 'dg-lsp', args: ['--stdio'] });
  assert.deepEqual(
    s.serverCommand(getter({ 'server.path': '/opt/venv/bin/dg-lsp', 'server.args': ['--log-level', 'debug'] })),
    { command: '/opt/venv/bin/dg-lsp', args: ['--stdio', '--log-level', 'debug'] },
  );
});

test('only process settings need a restart', () => {
  assert.equal(s.needsRestart((k) => k === 'dgLsp.server.path'), true);
  assert.equal(s.needsRestart((k) => k === 'dgLsp.maxTokens'), false);
});

test('document selector follows the languages setting', () => {
  const all = s.documentSelector(getter());
  assert.ok(all.some((d) => d.language === 'python' && d.scheme === 'file'));
  assert.ok(all.some((d) => d.language === 'shellscript'));
  assert.deepEqual(s.documentSelector(getter({ languages: ['rust'] })).map((d) => d.language), ['rust', 'rust']);
});

test('activation events cover the supported languages', () => {
  for (const id of ['python', 'javascript', 'typescript', 'rust', 'go', 'c', 'cpp', 'java', 'lua', 'shellscript', 'json']) {
    assert.ok(pkg.activationEvents.includes(`onLanguage:${id}`), id);
    assert.ok(s.LANGUAGE_IDS.includes(id), id);
  }
});

test('code action commands run the server kinds', () => {
  assert.deepEqual(s.codeActionArgs(s.REWRITE_KIND), { kind: 'refactor.rewrite.dgLsp.rewriteSelection', apply: 'first' });
  assert.equal(s.FILL_KIND, 'refactor.rewrite.dgLsp.fillHoles');
  const cmds = pkg.contributes.commands.map((c) => c.command);
  for (const c of ['dgLsp.rewriteSelection', 'dgLsp.fillHoles', 'dgLsp.reloadModel']) assert.ok(cmds.includes(c), c);
});

test('status bar text', () => {
  assert.equal(s.statusText({ loaded: false, error: null }).state, 'loading');
  assert.equal(s.statusText({ loaded: true, error: null, model: { path: '/m', device: 'cpu' } }).state, 'ready');
  const err = s.statusText({ loaded: false, error: 'no such dir' });
  assert.equal(err.state, 'error');
  assert.match(err.tooltip, /no such dir/);
});
