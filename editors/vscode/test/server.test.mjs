// Drives the real dg-lsp server over stdio with vscode-languageserver-protocol (what VS Code's client
// is built on): initialize with the extension's settings, didOpen, inlineCompletion, completion,
// codeAction + codeAction/resolve, didChangeConfiguration, the status command.
//
// The server command comes from DG_LSP_SERVER_COMMAND (a JSON array, e.g. the tiny test checkpoint);
// without it the test is skipped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as rpc from 'vscode-languageserver-protocol/node';

import * as s from '../out/settings.js';

const CMD = process.env.DG_LSP_SERVER_COMMAND ? JSON.parse(process.env.DG_LSP_SERVER_COMMAND) : null;
const skip = CMD ? false : 'set DG_LSP_SERVER_COMMAND to a JSON array, e.g. ["dg-lsp","--stdio"]';
const TIMEOUT = Number(process.env.DG_LSP_TEST_TIMEOUT_MS || 300000);

const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
const props = pkg.contributes.configuration.properties;
const settingsGet = (over) => (key) => (key in over ? over[key] : props[`dgLsp.${key}`]?.default);

const URI = 'file:///tmp/dg-lsp-vscode-test/sample.py';
const TEXT = [
  'import os',
  '',
  '',
  'def add(a, b):',
  '    return a + b',
  '',
  '',
  'def greet(name):',
  '    message = "hello " + name',
  '    print(message)',
  '    return message',
  '',
  '',
  'total = add(1, 2)',
  'print(greet("world"))',
  '',
].join('\n');

let proc, conn;
let stderr = '';
let closing = false;
const messages = [];
const progress = [];

before(async () => {
  if (!CMD) return;
  proc = spawn(CMD[0], CMD.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.DG_LSP_TEST_VERBOSE) process.stderr.write(d);
  });
  conn = rpc.createProtocolConnection(new rpc.StreamMessageReader(proc.stdout), new rpc.StreamMessageWriter(proc.stdin));
  conn.onRequest(rpc.WorkDoneProgressCreateRequest.type, () => null);
  conn.onNotification(rpc.ShowMessageNotification.type, (m) => messages.push(m));
  conn.onNotification(rpc.LogMessageNotification.type, () => {});
  conn.onNotification('$/progress', (p) => progress.push(p.value));
  conn.listen();
  // a server that dies fails the pending requests instead of hanging the test
  proc.on('exit', (code, signal) => {
    if (!closing) {
      process.stderr.write(`dg-lsp exited early: code ${code} signal ${signal}\n${stderr.slice(-4000)}\n`);
      conn.dispose();
    }
  });
});

after(async () => {
  if (!conn) return;
  closing = true;
  try {
    await Promise.race([conn.sendRequest(rpc.ShutdownRequest.type), new Promise((r) => setTimeout(r, 20000))]);
    await conn.sendNotification(rpc.ExitNotification.type);
  } catch {}
  conn.dispose();
  setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
});

test('initialize with the extension settings as initializationOptions', { skip, timeout: TIMEOUT }, async () => {
  const res = await conn.sendRequest(rpc.InitializeRequest.type, {
    processId: process.pid,
    rootUri: null,
    capabilities: {
      window: { workDoneProgress: true },
      textDocument: {
        inlineCompletion: { dynamicRegistration: false },
        completion: { completionItem: { snippetSupport: true } },
        codeAction: {
          dataSupport: true,
          resolveSupport: { properties: ['edit'] },
          codeActionLiteralSupport: { codeActionKind: { valueSet: ['refactor', 'refactor.rewrite'] } },
        },
      },
    },
    // what the extension sends: only the settings the user set
    initializationOptions: s.toServerSettings((k) => ({ maxTokens: 24, seed: 0, model: '' })[k]),
  });
  const caps = res.capabilities;
  assert.ok(caps.inlineCompletionProvider, 'inline completion advertised');
  assert.ok(caps.completionProvider);
  assert.ok(caps.codeActionProvider?.resolveProvider);
  assert.ok(caps.codeActionProvider.codeActionKinds.includes(s.REWRITE_KIND));
  assert.ok(caps.codeActionProvider.codeActionKinds.includes(s.FILL_KIND));
  assert.ok(caps.executeCommandProvider.commands.includes('dg-lsp.reloadModel'));
  await conn.sendNotification(rpc.InitializedNotification.type, {});
  await conn.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
    textDocument: { uri: URI, languageId: 'python', version: 1, text: TEXT },
  });
  assert.deepEqual(messages.filter((m) => m.type <= 2), [], 'no errors or warnings for valid settings');
});

function offsetOf(text, pos) {
  const lines = text.split('\n');
  return lines.slice(0, pos.line).reduce((n, l) => n + l.length + 1, 0) + pos.character; // ASCII sample
}

function apply(text, range, newText) {
  return text.slice(0, offsetOf(text, range.start)) + newText + text.slice(offsetOf(text, range.end));
}

/** Cursor positions an editor would ask at: line ends, empty lines, after `(`. */
const positions = TEXT.split('\n').flatMap((l, line) => {
  const out = [{ line, character: l.length }];
  if (l.includes('(')) out.push({ line, character: l.indexOf('(') + 1 });
  return out;
});

test('inlineCompletion: items insert at the cursor and keep the rest byte-identical', { skip, timeout: TIMEOUT }, async () => {
  let shown = 0;
  for (const position of positions) {
    const res = await conn.sendRequest(rpc.InlineCompletionRequest.type, {
      textDocument: { uri: URI },
      position,
      context: { triggerKind: 1 /* Invoked */ },
    });
    const items = Array.isArray(res) ? res : res?.items ?? [];
    for (const item of items) {
      shown++;
      assert.equal(typeof item.insertText, 'string');
      assert.ok(item.insertText.length > 0);
      assert.deepEqual(item.range.start, position);
      const out = apply(TEXT, item.range, item.insertText);
      const a = offsetOf(TEXT, item.range.start);
      const b = offsetOf(TEXT, item.range.end);
      assert.equal(out.slice(0, a), TEXT.slice(0, a));
      assert.equal(out.slice(a + item.insertText.length), TEXT.slice(b));
    }
    if (shown >= 2) break;
  }
  assert.ok(shown > 0, 'the server proposed ghost text somewhere');
});

test('completion: the infill as an item with a textEdit at the cursor', { skip, timeout: TIMEOUT }, async () => {
  let seen = 0;
  for (const position of positions) {
    const res = await conn.sendRequest(rpc.CompletionRequest.type, {
      textDocument: { uri: URI },
      position,
      context: { triggerKind: 1 },
    });
    const items = Array.isArray(res) ? res : res?.items ?? [];
    for (const item of items) {
      seen++;
      assert.ok(item.textEdit, 'item has a textEdit');
      assert.deepEqual(item.textEdit.range.start, position);
      assert.ok(item.label.length > 0);
    }
    if (seen) break;
  }
  assert.ok(seen > 0, 'the server proposed a completion item somewhere');
});

test('codeAction rewrite selection + codeAction/resolve: an edit of exactly the selection, or none and a message', { skip, timeout: TIMEOUT }, async () => {
  const range = { start: { line: 8, character: 14 }, end: { line: 8, character: 29 } }; // "hello " + name
  const actions = await conn.sendRequest(rpc.CodeActionRequest.type, {
    textDocument: { uri: URI },
    range,
    context: { diagnostics: [], only: [s.REWRITE_KIND], triggerKind: 1 },
  });
  assert.equal(actions.length, 1);
  const [action] = actions;
  assert.equal(action.kind, s.REWRITE_KIND);
  assert.equal(action.edit, undefined, 'computed lazily in codeAction/resolve');
  messages.length = 0;
  const resolved = await conn.sendRequest(rpc.CodeActionResolveRequest.type, action);
  if (resolved.edit === undefined) {
    // the model doubts nothing enough to change it (the random test model never does): no edit,
    // and the user is told so
    assert.equal(resolved.title, action.title);
    for (let i = 0; i < 50 && !messages.some((m) => m.message.includes('no change suggested')); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(messages.some((m) => m.message.includes('no change suggested')), JSON.stringify(messages));
    return;
  }
  const [change] = resolved.edit.documentChanges;
  assert.equal(change.textDocument.uri, URI);
  assert.equal(change.textDocument.version, 1);
  assert.equal(change.edits.length, 1);
  assert.deepEqual(change.edits[0].range, range);
  const out = apply(TEXT, range, change.edits[0].newText);
  assert.equal(out.slice(0, offsetOf(TEXT, range.start)), TEXT.slice(0, offsetOf(TEXT, range.start)));
  assert.ok(out.endsWith(TEXT.slice(offsetOf(TEXT, range.end))));
});

test('fill holes is offered for a function with a hole', { skip, timeout: TIMEOUT }, async () => {
  const uri = 'file:///tmp/dg-lsp-vscode-test/holes.py';
  const text = 'def f(x):\n    ...\n';
  await conn.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: 'python', version: 1, text },
  });
  const actions = await conn.sendRequest(rpc.CodeActionRequest.type, {
    textDocument: { uri },
    range: { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } },
    context: { diagnostics: [], only: [s.FILL_KIND] },
  });
  assert.equal(actions.length, 1);
  assert.equal(actions[0].kind, s.FILL_KIND);
});

test('didChangeConfiguration with the extension payload; bad values are reported by name', { skip, timeout: TIMEOUT }, async () => {
  messages.length = 0;
  await conn.sendNotification(rpc.DidChangeConfigurationNotification.type, {
    settings: s.didChangeConfigurationSettings(settingsGet({ maxTokens: 0 })),
  });
  const status = await conn.sendRequest(rpc.ExecuteCommandRequest.type, { command: 'dg-lsp.status', arguments: [] });
  assert.equal(s.statusText(status).state, 'ready');
  assert.ok(messages.some((m) => m.message.includes('maxTokens')), JSON.stringify(messages));
});
