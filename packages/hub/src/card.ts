import { basename } from 'node:path';
import { readPruneReport, type AnalysisResult, type TrainingHistory } from '@deepen/core';
import { HF_PREFIX } from './repo.js';

/** How a pruned checkpoint was made, from config.json's deepen.pruned and its prune_report.json. */
export interface PruneFacts {
  removedLayers: number[];
  originalLayers: number;
  method: string;
  depths: string;
  /** Where the unpruned model came from: a Hub reference (hf:owner/name@rev) or a local path. */
  from: string | null;
  perplexity: { before: number | null; afterPruning: number | null; afterHealing: number | null; healSteps: number } | null;
}

/** The pruning facts of a checkpoint folder, or null when it was not pruned. */
export function pruneFacts(dir: string, config: Record<string, unknown>): PruneFacts | null {
  const pruned = (config.deepen as { pruned?: Record<string, unknown> } | undefined)?.pruned;
  if (!pruned) return null;
  const report = readPruneReport(dir);
  return {
    removedLayers: (pruned.removed_layers as number[] | undefined) ?? [],
    originalLayers: Number(pruned.original_num_hidden_layers),
    method: String(pruned.method ?? 'layers'),
    depths: String(pruned.depths ?? 'keep'),
    from: typeof pruned.from === 'string' ? pruned.from : null,
    perplexity: report
      ? {
          before: report.before?.perplexity ?? null,
          afterPruning: report.afterPruning?.perplexity ?? null,
          afterHealing: report.afterHealing?.perplexity ?? null,
          healSteps: report.healSteps ?? 0,
        }
      : null,
  };
}

export interface ModelCardOptions {
  /** License id for the front matter (a Hub license id such as mit or apache-2.0). Default "other". */
  license?: string;
  /** Hub dataset ids the model was trained on, for the front matter. */
  datasets?: string[];
  /** The Hub model this one derives from. Default: the hf: source of a pruned checkpoint, if any. */
  baseModel?: string;
  /** One line on the normalization scheme, e.g. from @deepen/norms' scheme registry. */
  schemeDescription?: string;
  /** More tags for the front matter. */
  tags?: string[];
  /**
   * Sections the publisher knows about and the checkpoint's files do not (how a fine-tune was
   * made, say), placed after the normalization section. `body` is Markdown.
   */
  sections?: Array<{ heading: string; body: string }>;
}

/** Everything a card states, gathered from the checkpoint's files. */
export interface CardFacts {
  repo: string;
  revision?: string;
  /** The config.json being published. */
  config: Record<string, unknown>;
  /** The checkpoint's own config.json (differs from `config` when a folded export is published). */
  sourceConfig: Record<string, unknown>;
  weights: { parameters: number; dtypes: string[]; files: number; bytes: number };
  training: TrainingHistory | null;
  pruning: PruneFacts | null;
  analysis: AnalysisResult | null;
  /** GGUF files published beside the safetensors (for llama.cpp, Ollama, LM Studio). */
  gguf?: Array<{ path: string; dtype: string; bytes: number }>;
}

interface DeepenBlock {
  norm_scheme?: string;
  folded_from?: string;
  stock_runtime_compatible?: boolean;
  layer_depths?: number[];
}

const PAPER = 'https://arxiv.org/abs/2502.05795';

/** What the card needs to know about the scheme, from the two configs. */
export function schemeFacts(config: Record<string, unknown>, sourceConfig: Record<string, unknown>): { scheme: string; folded: boolean; stockCompatible: boolean } {
  const published = config.deepen as DeepenBlock | undefined;
  const source = sourceConfig.deepen as DeepenBlock | undefined;
  const folded = typeof published?.folded_from === 'string';
  const scheme = published?.folded_from ?? source?.norm_scheme ?? published?.norm_scheme ?? 'pre';
  const stockCompatible = published === undefined || published.stock_runtime_compatible === true || (published.norm_scheme === 'pre' && published.stock_runtime_compatible === undefined);
  return { scheme, folded, stockCompatible };
}

/** A YAML scalar: plain where that is unambiguous, double-quoted (JSON escapes are valid YAML) otherwise. */
function yamlScalar(value: string): string {
  const plain = /^[A-Za-z_][\w./-]*$/.test(value) && !/^(true|false|yes|no|on|off|null|~)$/i.test(value);
  return plain ? value : JSON.stringify(value);
}

function frontMatter(entries: Array<[string, string | string[] | undefined]>): string {
  const lines = ['---'];
  for (const [key, value] of entries) {
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    if (Array.isArray(value)) lines.push(`${key}:`, ...value.map((v) => `- ${yamlScalar(v)}`));
    else lines.push(`${key}: ${yamlScalar(value)}`);
  }
  lines.push('---');
  return lines.join('\n');
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

const table = (header: string[], rows: Array<Array<string | number>>) =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

/** The Hub id a pruned checkpoint came from, when its source was an hf: reference. */
function hubSource(pruning: PruneFacts | null): string | undefined {
  const from = pruning?.from;
  if (!from?.startsWith(HF_PREFIX)) return undefined;
  return from.slice(HF_PREFIX.length).split('@')[0];
}

function describeData(settings: Record<string, unknown>): string {
  const data = settings.data;
  if (data === undefined || data === null) return 'the U.S. State of the Union addresses (deepen\'s built-in corpus)';
  // Only file names: the card is public, the paths on the machine that trained are not its business.
  return String(data)
    .split(',')
    .map((p) => `\`${basename(p.trim())}\``)
    .join(', ');
}

/** transformers' class name for the config's family (LlamaForCausalLM, Qwen2ForCausalLM, ...). */
function architectureName(config: Record<string, unknown>): string {
  const archs = config.architectures;
  return Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : 'LlamaForCausalLM';
}

/** What the family adds to a plain LLaMA block, as the card lists it. */
function familyFeatures(c: Record<string, unknown>): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const scaling = c.rope_scaling as Record<string, unknown> | null | undefined;
  if (scaling) rows.push(['rope scaling', Object.entries(scaling).map(([k, v]) => `${k} ${String(v)}`).join(', ')]);
  if (typeof c.head_dim === 'number' && typeof c.hidden_size === 'number' && typeof c.num_attention_heads === 'number' && c.head_dim * c.num_attention_heads !== c.hidden_size) {
    rows.push(['head dimension', String(c.head_dim)]);
  }
  const biases = c.model_type === 'qwen2' ? 'q, k, v' : [c.attention_bias === true ? 'q, k, v, o' : '', c.mlp_bias === true ? 'gate, up, down' : ''].filter(Boolean).join('; ');
  if (biases) rows.push(['projection biases', biases]);
  if (c.model_type === 'qwen3') rows.push(['q/k norms', 'per-head RMSNorm before rotary']);
  const slides = c.model_type === 'mistral' ? c.sliding_window !== null && c.sliding_window !== undefined : c.use_sliding_window === true;
  if (slides) rows.push(['sliding window', `${String(c.sliding_window)} tokens${Array.isArray(c.layer_types) ? ` (${c.layer_types.filter((t) => t === 'sliding_attention').length} of the layers)` : c.model_type === 'mistral' ? '' : ` (from layer ${String(c.max_window_layers)})`}`]);
  return rows;
}

function architecture(facts: CardFacts): string {
  const c = facts.config as Record<string, number | boolean | undefined>;
  const heads = `${c.num_attention_heads} (${c.num_key_value_heads ?? c.num_attention_heads} key/value)`;
  return table(
    ['', ''],
    [
      ['architecture', `\`${architectureName(facts.config)}\` (model_type \`${String(facts.config.model_type ?? 'llama')}\`)`],
      ['layers', String(c.num_hidden_layers)],
      ['hidden size', String(c.hidden_size)],
      ['attention heads', heads],
      ['MLP size (SwiGLU)', String(c.intermediate_size)],
      ['vocabulary', String(c.vocab_size)],
      ['context', `${c.max_position_embeddings} tokens (RoPE, theta ${c.rope_theta})`],
      ['RMSNorm epsilon', String(c.rms_norm_eps)],
      ['tied embeddings', c.tie_word_embeddings ? 'yes' : 'no'],
      ...familyFeatures(facts.config),
      ['parameters', facts.weights.parameters >= 1000 ? `${facts.weights.parameters.toLocaleString('en-US')} (${count(facts.weights.parameters)})` : String(facts.weights.parameters)],
      ['weights', `${facts.weights.dtypes.join(', ')} safetensors, ${facts.weights.files} file${facts.weights.files === 1 ? '' : 's'}, ${formatBytes(facts.weights.bytes)}`],
    ],
  );
}

function normalization(facts: CardFacts, scheme: string, folded: boolean, stock: boolean, description: string | undefined): string {
  const lns = scheme.split('+').includes('lns');
  const named = lns ? `**${scheme}** (LayerNorm Scaling, [arXiv 2502.05795](${PAPER}))` : `**${scheme}**`;
  const lines = [`Trained under the normalization scheme ${named}${description ? `: ${description}` : ''}.`];
  const depths = (facts.sourceConfig.deepen as DeepenBlock | undefined)?.layer_depths;
  if (depths) lines.push('', `After pruning, the layers keep the depths their constants were trained with: ${depths.join(', ')}.`);
  if (folded) {
    lines.push(
      '',
      "The weights here are **folded**: the scheme's per-layer constants are multiplied into the norm (and, for gates, projection) weights, so this is an ordinary Pre-LN checkpoint of its family (`model_type` in config.json) that computes exactly what the trained model computes. Stock runtimes load it as it is.",
    );
  } else if (stock) {
    lines.push('', 'This is the standard Pre-LN layout of its family; stock runtimes load it as it is.');
  } else {
    lines.push(
      '',
      "**Only deepen reproduces this model.** Stock runtimes (transformers, llama.cpp, vLLM) would load these weights as a plain Pre-LN model and compute something else: the scheme lives in the `deepen` block of config.json, which they ignore.",
    );
  }
  return lines.join('\n');
}

function training(record: TrainingHistory): string {
  const s = record.settings;
  const tokens = record.steps.reduce((a, e) => a + (e.tokens ?? 0), 0);
  const lastStep = record.steps.at(-1);
  const lastEval = record.evals.at(-1);
  const rows: Array<[string, string]> = [
    ['steps', String(record.step)],
    ['tokens seen', tokens >= 1000 ? `${tokens.toLocaleString('en-US')} (${count(tokens)})` : tokens > 0 ? String(tokens) : 'n/a'],
    ['data', describeData(s)],
  ];
  if (s['seq-len'] !== undefined) {
    const total = s['total-batch-size'] ?? s['batch-size'];
    rows.push(['batch', `${total} sequences of ${s['seq-len']} tokens${total !== s['batch-size'] ? ` (micro-batches of ${s['batch-size']})` : ''}`]);
  }
  if (s.optimizer !== undefined) {
    rows.push(['optimizer', `${s.optimizer}, peak learning rate ${s.lr}, ${s.schedule} schedule, ${s.warmup} warmup step${Number(s.warmup) === 1 ? '' : 's'}, weight decay ${s['weight-decay'] ?? 0}${Number(s['grad-clip'] ?? 0) > 0 ? `, gradient clipping ${s['grad-clip']}` : ''}`]);
  }
  if (s.seed !== undefined) rows.push(['seed', String(s.seed)]);
  if (lastStep) rows.push(['final training loss', lastStep.loss.toFixed(4)]);
  rows.push([
    'final validation perplexity',
    lastEval ? `**${lastEval.perplexity.toFixed(2)}** (loss ${lastEval.loss.toFixed(4)}, step ${lastEval.step}, ${lastEval.tokens.toLocaleString('en-US')} held-out tokens)` : 'not evaluated',
  ]);
  const parts = [table(['', ''], rows)];
  if (record.evals.length > 1) {
    const shown = record.evals.length > 12 ? [...record.evals.slice(0, 6), ...record.evals.slice(-6)] : record.evals;
    parts.push('', 'Validation during training:', '', table(['step', 'loss', 'perplexity'], shown.map((e) => [e.step, e.loss.toFixed(4), e.perplexity.toFixed(2)])));
  }
  return parts.join('\n');
}

function pruningSection(p: PruneFacts): string {
  const source = p.from?.startsWith(HF_PREFIX) ? `[${p.from.slice(HF_PREFIX.length)}](https://huggingface.co/${hubSource(p)})` : 'a local checkpoint';
  const lines = [
    `Pruned from ${source}: ${p.originalLayers} layers, of which ${p.removedLayers.length === 1 ? 'layer' : 'layers'} ${p.removedLayers.join(', ')} (0-based) ${p.removedLayers.length === 1 ? 'was' : 'were'} removed (plan: ${p.method}; scheme constants: ${p.depths === 'keep' ? 'kept from the original depths' : 'recomputed for the new depths'}).`,
  ];
  if (p.perplexity) {
    const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2));
    const rows: Array<[string, string]> = [
      ['before pruning', f(p.perplexity.before)],
      ['after pruning', f(p.perplexity.afterPruning)],
    ];
    if (p.perplexity.afterHealing !== null) rows.push([`after ${p.perplexity.healSteps} healing steps`, f(p.perplexity.afterHealing)]);
    lines.push('', table(['model', 'perplexity'], rows));
  }
  return lines.join('\n');
}

function diagnostics(facts: CardFacts): string {
  const a = facts.analysis;
  if (a) {
    const removal = new Map(a.removal.map((r) => [r.layer, r]));
    const depths = (facts.sourceConfig.deepen as DeepenBlock | undefined)?.layer_depths;
    const scores = [
      `perplexity ${a.perplexity.perplexity.toFixed(2)} on ${a.perplexity.tokens.toLocaleString('en-US')} held-out tokens`,
      a.cloze ? `last-word (cloze) accuracy ${(100 * a.cloze.accuracy).toFixed(1)}%` : '',
      a.multipleChoice ? `multiple-choice accuracy ${(100 * a.multipleChoice.accuracy).toFixed(1)}%` : '',
    ].filter(Boolean);
    return [
      `Measured with \`pretrain analyze\`: ${scores.join(', ')}. Per layer, over ${a.depth.tokens.toLocaleString('en-US')} tokens: the variance of the residual stream after the block, its Block Influence (1 - cos(input, output), as in ShortGPT), and the perplexity with the layer removed; a layer whose removal barely raises perplexity does little.`,
      '',
      table(
        ['layer', 'depth l', 'residual variance', 'Block Influence', 'perplexity when removed'],
        a.depth.layers.map((l) => {
          const r = removal.get(l.layer);
          return [l.layer, depths?.[l.layer] ?? l.layer + 1, l.outputVariance.toPrecision(4), l.blockInfluence.toFixed(4), r ? `${r.perplexity.toFixed(2)} (${r.perplexityIncrease >= 0 ? '+' : ''}${r.perplexityIncrease.toFixed(2)})` : 'n/a'];
        }),
      ),
    ].join('\n');
  }
  const d = facts.training?.diagnostics;
  if (d) {
    return [
      `Recorded during training at step ${d.step} (per layer, 0-based: variance of the residual stream after the block, gradient norm, and update-to-weight ratio). Under Pre-LN the variance grows with depth; LayerNorm Scaling keeps it flat.`,
      '',
      table(['layer', 'residual variance', 'gradient norm', 'update ratio'], d.layers.map((l) => [l.layer, l.outputVariance.toPrecision(4), l.gradNorm.toPrecision(3), l.updateRatio.toExponential(2)])),
      '',
      'Run `pretrain analyze` on the checkpoint and publish with `--report` for Block Influence and layer-removal results.',
    ].join('\n');
  }
  return 'No depth diagnostics were recorded for this checkpoint. `pretrain analyze` measures them; publish with `--report` to include them here.';
}

function usage(facts: CardFacts, stock: boolean, prompt: string): string {
  const ref = `${HF_PREFIX}${facts.repo}${facts.revision ? `@${facts.revision}` : ''}`;
  const rev = facts.revision ? `, revision=${JSON.stringify(facts.revision)}` : '';
  const deepen = ['```sh', `pnpm pretrain generate ${ref} --prompt ${JSON.stringify(prompt)}`, `pnpm pretrain eval ${ref} --data moby-dick`, '```'].join('\n');
  if (!stock) {
    return ["With deepen's `pretrain` command, from a clone of deepen (it downloads the model into its cache, then runs it on TensorFlow.js):", '', deepen].join('\n');
  }
  return [
    'With transformers:',
    '',
    '```python',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    '',
    `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(facts.repo)}${rev})`,
    `model = AutoModelForCausalLM.from_pretrained(${JSON.stringify(facts.repo)}${rev})`,
    `inputs = tokenizer(${JSON.stringify(prompt)}, return_tensors="pt")`,
    'output = model.generate(**inputs, max_new_tokens=40, do_sample=True, top_p=0.95)',
    'print(tokenizer.decode(output[0], skip_special_tokens=True))',
    '```',
    '',
    "With deepen's `pretrain` command, from a clone of deepen:",
    '',
    deepen,
  ].join('\n');
}

/** How to run the published GGUF files, one per precision. */
function ggufSection(facts: CardFacts, prompt: string): string {
  const files = facts.gguf ?? [];
  const first = files[0] as { path: string; dtype: string };
  const tag = (dtype: string) => dtype.toUpperCase();
  return [
    'The same model as GGUF files, written by deepen (norm scheme folded, q/k rows in llama.cpp\'s rotary layout):',
    '',
    '| file | precision | size |',
    '| --- | --- | ---: |',
    ...files.map((f) => `| \`${f.path}\` | ${tag(f.dtype)} | ${formatBytes(f.bytes)} |`),
    '',
    '```sh',
    `llama-cli -hf ${facts.repo}:${tag(first.dtype)} -p ${JSON.stringify(prompt)}`,
    `ollama run hf.co/${facts.repo}:${tag(first.dtype)}`,
    '```',
    '',
    'LM Studio finds the files when you search for the repository. Q8_0 stores matrices in 8-bit blocks of 32 (rows of other lengths stay F16); norms and biases are F32. llama.cpp\'s byte-level BPE detokenizer removes spaces before punctuation, so its decoded text can differ from the tokens\' exact text.',
  ].join('\n');
}

const FAMILY_NAMES: Record<string, string> = { llama: 'LLaMA-style', mistral: 'Mistral-style', qwen2: 'Qwen2-style', qwen3: 'Qwen3-style' };

/** The model card (README.md) for a checkpoint: Hub front matter, then what the model is and how to use it. */
export function modelCard(facts: CardFacts, options: ModelCardOptions = {}): string {
  const { scheme, folded, stockCompatible } = schemeFacts(facts.config, facts.sourceConfig);
  const lns = scheme.split('+').includes('lns');
  const tags = [
    'deepen',
    String(facts.config.model_type ?? 'llama'),
    `norm-${slug(scheme)}`,
    ...(lns ? ['layernorm-scaling'] : []),
    ...(folded ? ['folded'] : []),
    ...(facts.pruning ? ['pruned'] : []),
    ...(facts.gguf && facts.gguf.length > 0 ? ['gguf'] : []),
    ...(options.tags ?? []),
  ];
  const baseModel = options.baseModel ?? hubSource(facts.pruning);
  const name = facts.repo.split('/')[1] ?? facts.repo;
  const layers = facts.config.num_hidden_layers;
  const builtinData = facts.training !== null && (facts.training.settings.data === undefined || facts.training.settings.data === null);
  const prompt = builtinData ? 'The state of the Union' : 'Once upon a time';
  const sections = [
    frontMatter([
      ['license', options.license ?? 'other'],
      ['library_name', stockCompatible ? 'transformers' : 'deepen'],
      ['tags', [...new Set(tags)]],
      ['datasets', options.datasets],
      ['pipeline_tag', 'text-generation'],
      ['base_model', baseModel],
    ]),
    '',
    `# ${name}`,
    '',
    `A ${layers}-layer ${FAMILY_NAMES[String(facts.config.model_type ?? 'llama')] ?? 'LLaMA-style'} language model with ${count(facts.weights.parameters)} parameters, ${facts.pruning ? 'pruned' : 'trained'} with deepen under the \`${scheme}\` normalization scheme${folded ? ' and published as a plain Pre-LN model' : ''}.`,
    '',
    '## Architecture',
    '',
    architecture(facts),
    '',
    '## Normalization',
    '',
    normalization(facts, scheme, folded, stockCompatible, options.schemeDescription),
  ];
  for (const section of options.sections ?? []) sections.push('', `## ${section.heading}`, '', section.body.trim());
  if (facts.training) sections.push('', '## Training', '', training(facts.training));
  if (facts.pruning) sections.push('', '## Pruning', '', pruningSection(facts.pruning));
  sections.push('', '## Depth diagnostics', '', diagnostics(facts));
  sections.push('', '## How to use', '', usage(facts, stockCompatible, prompt));
  if (facts.gguf && facts.gguf.length > 0) sections.push('', '## GGUF (llama.cpp, Ollama, LM Studio)', '', ggufSection(facts, prompt));
  sections.push(
    '',
    '## Limitations',
    '',
    `A research model: ${facts.training ? `${facts.training.step} steps of training on ${describeData(facts.training.settings)}` : 'small and briefly trained'}. It shows the effect of the normalization scheme; it is not an assistant, has had no safety evaluation, and repeats the biases of its data.`,
    '',
    'Optimizer state and trainer internals are not published; resuming training needs the original run folder.',
    '',
  );
  return sections.join('\n');
}
