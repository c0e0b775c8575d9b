import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { validateRepoId } from '@deepen/hub';
import { WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from '@deepen/core';
import { readCheckpointConfig } from '@deepen/models';
import { resolveCheckpoint } from '@deepen/trainer';
import { NAME_PATTERN } from './schemas.js';
import type { ModelRecord, Store } from './store/types.js';

export interface BaseModel {
  id: string;
  /** The checkpoint folder (config.json, weights, tokenizer.json). */
  dir: string;
  created: number;
  contextLength: number;
  /** The Hub repository it came from (`owner/name`), if the operator named one: published fine-tunes give it as base_model. */
  hubRepo: string | null;
}

export interface ModelInfo {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  context_length: number;
}

/** A checkpoint folder a base model can come from: the folder itself, or a run folder's newest checkpoint. */
function checkpointFolder(path: string): string {
  const full = resolve(path);
  if (existsSync(join(full, 'config.json'))) return full;
  try {
    return resolveCheckpoint(full);
  } catch {
    throw new Error(`${path}: not a checkpoint folder (no config.json) nor a training run with checkpoints/`);
  }
}

/** Checks that a folder holds everything fine-tuning needs and describes it. */
export function inspectBaseModel(id: string, path: string): BaseModel {
  if (!NAME_PATTERN.test(id)) throw new Error(`model name '${id}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  const dir = checkpointFolder(path);
  const config = readCheckpointConfig(dir);
  if (!existsSync(join(dir, WEIGHTS_FILE)) && !existsSync(join(dir, WEIGHTS_INDEX_FILE))) throw new Error(`${dir}: no ${WEIGHTS_FILE} (or ${WEIGHTS_INDEX_FILE})`);
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${dir}: no tokenizer.json (fine-tuning and completions need the model's tokenizer)`);
  return { id, dir, created: Math.floor(statSync(join(dir, 'config.json')).mtimeMs / 1000), contextLength: config.max_position_embeddings, hubRepo: null };
}

/**
 * The base models: every folder in `modelsDir` (named by the folder) and every NAME=PATH given.
 * A broken folder in `modelsDir` is skipped with a warning; a broken NAME=PATH is an error.
 */
export function discoverBaseModels(modelsDir: string, explicit: string[], warn: (line: string) => void): BaseModel[] {
  const found = new Map<string, BaseModel>();
  if (existsSync(modelsDir)) {
    for (const entry of readdirSync(modelsDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
      try {
        found.set(entry.name, inspectBaseModel(entry.name, join(modelsDir, entry.name)));
      } catch (error) {
        warn(`models: skipping ${join(modelsDir, entry.name)}: ${(error as Error).message}`);
      }
    }
  }
  for (const item of explicit) {
    const at = item.indexOf('=');
    if (at <= 0) throw new Error(`--model expects NAME=PATH, got '${item}'`);
    const model = inspectBaseModel(item.slice(0, at), item.slice(at + 1));
    if (found.has(model.id)) throw new Error(`--model ${model.id}: a base model of that name already exists (${found.get(model.id)!.dir})`);
    found.set(model.id, model);
  }
  return [...found.values()];
}

/** Records the Hub repository of base models from `NAME=OWNER/NAME` items (the --model-repo flag). */
export function withHubRepos(models: BaseModel[], items: string[]): BaseModel[] {
  const repos = new Map<string, string>();
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0) throw new Error(`--model-repo expects NAME=OWNER/NAME, got '${item}'`);
    const [name, repo] = [item.slice(0, at), item.slice(at + 1)];
    if (!models.some((m) => m.id === name)) throw new Error(`--model-repo ${name}: no base model of that name (${models.map((m) => m.id).join(', ') || 'none'})`);
    try {
      repos.set(name, validateRepoId(repo));
    } catch (error) {
      throw new Error(`--model-repo ${name}: ${(error as Error).message}`);
    }
  }
  return models.map((m) => ({ ...m, hubRepo: repos.get(m.id) ?? m.hubRepo }));
}

/** Base models (every tenant sees them) and each tenant's fine-tuned models and checkpoints. */
export class ModelRegistry {
  private readonly base: Map<string, BaseModel>;

  constructor(
    base: BaseModel[],
    private readonly store: Store,
  ) {
    this.base = new Map(base.map((m) => [m.id, m]));
  }

  baseModel(id: string): BaseModel | null {
    return this.base.get(id) ?? null;
  }

  private contextOf(record: ModelRecord): number {
    return this.base.get(record.baseModel)?.contextLength ?? readCheckpointConfig(record.dir).max_position_embeddings;
  }

  /** The folder to generate from for a model id this tenant may use, or null. */
  async resolve(tenant: string, id: string): Promise<{ id: string; dir: string } | null> {
    const base = this.base.get(id);
    if (base) return { id, dir: base.dir };
    const tuned = await this.store.getModel(tenant, id);
    if (tuned) return { id, dir: tuned.dir };
    const checkpoint = await this.store.findCheckpointModel(tenant, id);
    return checkpoint ? { id, dir: checkpoint.dir } : null;
  }

  async describe(tenant: string, id: string): Promise<ModelInfo | null> {
    const base = this.base.get(id);
    if (base) return { id, object: 'model', created: base.created, owned_by: 'system', context_length: base.contextLength };
    const tuned = await this.store.getModel(tenant, id);
    return tuned ? { id, object: 'model', created: tuned.createdAt, owned_by: tenant, context_length: this.contextOf(tuned) } : null;
  }

  async list(tenant: string): Promise<ModelInfo[]> {
    const base = [...this.base.values()].map((m): ModelInfo => ({ id: m.id, object: 'model', created: m.created, owned_by: 'system', context_length: m.contextLength }));
    const tuned = (await this.store.listModels(tenant)).map((m): ModelInfo => ({ id: m.id, object: 'model', created: m.createdAt, owned_by: tenant, context_length: this.contextOf(m) }));
    return [...base, ...tuned];
  }
}
