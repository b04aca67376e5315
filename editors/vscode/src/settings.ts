/**
 * The pure part of the extension: VS Code's `dgLsp.*` configuration -> dg-lsp server settings,
 * and the server command line. No `vscode` import, so Node's test runner can load it.
 *
 * Server settings are camelCase keys (dg_lsp/settings.py); each has a `dgLsp.<key>` setting here.
 */

/** Every server setting, with the JSON type the server expects. Keep in sync with dg_lsp/settings.py. */
export const SERVER_SETTINGS = {
  model: 'string|null',
  device: 'string',
  dtype: 'string',
  promptLayout: 'string',
  maxTokens: 'integer',
  contextTokens: 'integer',
  crossFile: 'string',
  crossFileTokens: 'integer',
  denoisingSteps: 'integer',
  rewriteStrength: 'number',
  holeTokens: 'integer',
  languages: 'string[]',
  inlineCompletion: 'boolean',
  completionItems: 'boolean',
  multiline: 'boolean',
  threads: 'integer',
  prefetch: 'boolean',
  minConfidence: 'number',
  alternatives: 'integer',
  automaticAlternatives: 'integer',
  seed: 'integer',
  tuned: 'string',
  tuneMinutes: 'number',
  memory: 'string',
  memoryDocument: 'boolean',
  memoryOpenDocuments: 'boolean',
  memoryWorkspace: 'boolean',
  memoryWorkspaceTokens: 'integer',
  trustRemoteCode: 'boolean',
} as const;

export type ServerSettingKey = keyof typeof SERVER_SETTINGS;
export type ServerSettings = Partial<Record<ServerSettingKey, unknown>>;

/** The configuration section the extension contributes (`dgLsp.maxTokens`, ...). */
export const SECTION = 'dgLsp';

/** Settings that change how the server process is started: a change restarts it. */
export const PROCESS_SETTINGS = ['server.path', 'server.args'] as const;

/** Reads one `dgLsp.*` value; VS Code's `WorkspaceConfiguration.get` fits. */
export type Getter = (key: string) => unknown;

/**
 * The server's settings from the `dgLsp` configuration section.
 *
 * `get` returns only values the user set (VS Code: `inspect()`'s workspaceFolder / workspace /
 * global value), so unset keys keep the server's own defaults, including values given on its
 * command line (`dgLsp.server.args: ["--model", ...]`). An empty model means "not set".
 * Values are passed as they are: the server validates them and names any bad key.
 */
export function toServerSettings(get: Getter): ServerSettings {
  const out: ServerSettings = {};
  for (const key of Object.keys(SERVER_SETTINGS) as ServerSettingKey[]) {
    let value = get(key);
    if (value === undefined || value === null) continue;
    if (key === 'model' && typeof value === 'string' && value.trim() === '') continue;
    if (key === 'languages' && Array.isArray(value)) value = value.filter((v) => typeof v === 'string' && v.length > 0);
    out[key] = value;
  }
  return out;
}

/** The settings object for workspace/didChangeConfiguration (the server unwraps `dgLsp`). */
export function didChangeConfigurationSettings(get: Getter): { dgLsp: ServerSettings } {
  return { dgLsp: toServerSettings(get) };
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** `dg-lsp --stdio` (from PATH unless `dgLsp.server.path` names another executable). */
export function serverCommand(get: Getter): ServerCommand {
  const path = get('server.path');
  const extra = get('server.args');
  const command = typeof path === 'string' && path.trim() !== '' ? path.trim() : 'dg-lsp';
  const args = ['--stdio', ...(Array.isArray(extra) ? extra.filter((a): a is string => typeof a === 'string') : [])];
  return { command, args };
}

/** Whether a configuration change needs a server restart (true) or only didChangeConfiguration (false). */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return PROCESS_SETTINGS.some((k) => affects(`${SECTION}.${k}`));
}

/** The languageIds the client attaches to: the server's grammars (see grammars/registry.json). */
export const LANGUAGE_IDS = [
  'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'rust', 'go',
  'c', 'cpp', 'cuda-cpp', 'java', 'lua', 'shellscript', 'json', 'jsonc',
] as const;

/** Document selector: the `languages` setting when set, else every supported language. */
export function documentSelector(get: Getter): { scheme: string; language: string }[] {
  const langs = get('languages');
  const ids = Array.isArray(langs) && langs.length > 0 ? langs.filter((l): l is string => typeof l === 'string') : [...LANGUAGE_IDS];
  return ids.flatMap((language) => [
    { scheme: 'file', language },
    { scheme: 'untitled', language },
  ]);
}

export const REWRITE_KIND = 'refactor.rewrite.dgLsp.rewriteSelection';
export const FILL_KIND = 'refactor.rewrite.dgLsp.fillHoles';

/** Arguments for VS Code's built-in `editor.action.codeAction`: run the first action of `kind`. */
export function codeActionArgs(kind: string): { kind: string; apply: 'first' } {
  return { kind, apply: 'first' };
}

/** One-line status text for the status bar from the server's `dg-lsp.status` answer. */
export function statusText(status: unknown): { text: string; tooltip: string; state: 'loading' | 'ready' | 'error' } {
  const s = (status ?? {}) as { loaded?: boolean; error?: string | null; model?: unknown };
  if (s.error) return { text: '$(error) dg-lsp', tooltip: `dg-lsp: model failed to load: ${s.error}`, state: 'error' };
  if (s.loaded) {
    const m = (s.model ?? {}) as { path?: string; device?: string; dtype?: string };
    const model = [m.path, m.device, m.dtype].filter(Boolean).join(', ');
    return { text: '$(sparkle) dg-lsp', tooltip: `dg-lsp: ready (${model})`, state: 'ready' };
  }
  return { text: '$(sync~spin) dg-lsp', tooltip: 'dg-lsp: loading the model', state: 'loading' };
}
