import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
} from 'vscode-languageclient/node';
import {
  FILL_KIND,
  REWRITE_KIND,
  SECTION,
  codeActionArgs,
  didChangeConfigurationSettings,
  documentSelector,
  needsRestart,
  serverCommand,
  statusText,
  toServerSettings,
} from './settings';

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.LogOutputChannel;
let pollTimer: NodeJS.Timeout | undefined;

/** Effective values (defaults included): for the client's own settings (server path, languages). */
function config(): (key: string) => unknown {
  const c = vscode.workspace.getConfiguration(SECTION);
  return (key) => c.get(key);
}

/** Only what the user set: unset keys keep the server's defaults (and its command-line values). */
function userConfig(): (key: string) => unknown {
  const c = vscode.workspace.getConfiguration(SECTION);
  return (key) => {
    const i = c.inspect(key);
    return i?.workspaceFolderValue ?? i?.workspaceValue ?? i?.globalValue;
  };
}

async function startClient(): Promise<void> {
  const get = config();
  const cmd = serverCommand(get);
  const serverOptions: ServerOptions = { command: cmd.command, args: cmd.args, transport: TransportKind.stdio };
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(get),
    initializationOptions: toServerSettings(userConfig()),
    outputChannel: output,
    // progress ("loading model") and window/showMessage errors are shown by the client itself
  };
  client = new LanguageClient('dgLsp', 'dg-lsp', serverOptions, clientOptions);
  // vscode-languageclient 11 (LSP 3.18) registers textDocument/inlineCompletion by default;
  // no registerProposedFeatures() is needed.
  client.onDidChangeState((e) => {
    if (e.newState === State.Stopped) setStatus({ text: '$(circle-slash) dg-lsp', tooltip: 'dg-lsp: server stopped' });
  });
  setStatus({ text: '$(sync~spin) dg-lsp', tooltip: 'dg-lsp: starting the server' });
  try {
    await client.start();
  } catch (err) {
    const msg = `dg-lsp: could not start "${cmd.command} ${cmd.args.join(' ')}": ${err}. ` +
      'Install it (pip install dg-lsp) or set dgLsp.server.path.';
    setStatus({ text: '$(error) dg-lsp', tooltip: msg });
    void vscode.window.showErrorMessage(msg, 'Open settings').then((pick) => {
      if (pick) void vscode.commands.executeCommand('workbench.action.openSettings', 'dgLsp.server.path');
    });
    return;
  }
  pollStatus();
}

function setStatus(s: { text: string; tooltip: string }): void {
  statusItem.text = s.text;
  statusItem.tooltip = s.tooltip;
  statusItem.show();
}

async function serverStatus(): Promise<unknown> {
  if (!client || !client.isRunning()) return undefined;
  return client.sendRequest(ExecuteCommandRequest.type, { command: 'dg-lsp.status', arguments: [] });
}

/** Poll dg-lsp.status until the model is loaded or failed (the status bar shows which). */
function pollStatus(): void {
  if (pollTimer) clearTimeout(pollTimer);
  const tick = async () => {
    try {
      const st = statusText(await serverStatus());
      setStatus(st);
      if (st.state === 'loading') pollTimer = setTimeout(tick, 1000);
    } catch {
      pollTimer = setTimeout(tick, 2000);
    }
  };
  void tick();
}

async function stopClient(): Promise<void> {
  if (pollTimer) clearTimeout(pollTimer);
  const c = client;
  client = undefined;
  if (c) {
    try {
      await c.stop(10000);
    } catch {
      /* already gone */
    }
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel('dg-lsp', { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = 'dgLsp.status';
  context.subscriptions.push(output, statusItem);

  const runAction = (kind: string) => async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    if (kind === REWRITE_KIND && editor.selection.isEmpty) {
      void vscode.window.showInformationMessage('dg-lsp: select the code to rewrite first.');
      return;
    }
    await vscode.commands.executeCommand('editor.action.codeAction', codeActionArgs(kind));
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('dgLsp.rewriteSelection', runAction(REWRITE_KIND)),
    vscode.commands.registerCommand('dgLsp.fillHoles', runAction(FILL_KIND)),
    vscode.commands.registerCommand('dgLsp.reloadModel', async () => {
      if (!client) return;
      setStatus({ text: '$(sync~spin) dg-lsp', tooltip: 'dg-lsp: reloading the model' });
      await client.sendRequest(ExecuteCommandRequest.type, { command: 'dg-lsp.reloadModel', arguments: [] });
      pollStatus();
    }),
    vscode.commands.registerCommand('dgLsp.tune', async () => {
      if (!client) return;
      const r = (await client.sendRequest(ExecuteCommandRequest.type, { command: 'dg-lsp.tune', arguments: [] })) as
        | { started?: boolean }
        | undefined;
      if (r && r.started === false) void vscode.window.showInformationMessage('dg-lsp: a tune is already running.');
    }),
    vscode.commands.registerCommand('dgLsp.tuneCancel', async () => {
      if (!client) return;
      await client.sendRequest(ExecuteCommandRequest.type, { command: 'dg-lsp.tuneCancel', arguments: [] });
    }),
    vscode.commands.registerCommand('dgLsp.status', async () => {
      const st = await serverStatus();
      const s = statusText(st);
      setStatus(s);
      const pick = await vscode.window.showInformationMessage(s.tooltip, 'Show details');
      if (pick) {
        output.appendLine(JSON.stringify(st, null, 2));
        output.show(true);
      }
    }),
    vscode.commands.registerCommand('dgLsp.restartServer', async () => {
      await stopClient();
      await startClient();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration(SECTION) || !client) return;
      if (needsRestart((s) => e.affectsConfiguration(s)) || e.affectsConfiguration(`${SECTION}.languages`)) {
        await stopClient();
        await startClient();
        return;
      }
      await client.sendNotification(DidChangeConfigurationNotification.type, { settings: didChangeConfigurationSettings(userConfig()) });
      pollStatus(); // a model setting may have started a reload
    }),
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
