import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { StorageDtype } from '@deepen/core';
import { exportGguf, GGUF_DTYPES, GgufError, type GgufDtype } from '@deepen/gguf';
import { formatBytes } from '@deepen/hub';
import { saveCheckpoint } from '@deepen/models';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import { ENGINE_FLAGS, startEngine } from '../setup.js';
import { CHECKPOINT_HELP, checkpointDir, openCheckpoint, storedDtype } from '../checkpoints.js';

const FLAGS: Record<string, FlagSpec> = {
  out: { type: 'string', value: 'PATH', description: 'the file to write (FILE.gguf), or the folder for --format safetensors' },
  format: { type: 'string', choices: ['gguf', 'safetensors'], default: 'gguf', description: "gguf: one file for llama.cpp, Ollama, LM Studio; safetensors: a folded Hugging Face checkpoint folder for transformers" },
  dtype: { type: 'string', value: 'TYPE', description: `matrix precision: ${GGUF_DTYPES.join(', ')} (q8_0 only for gguf; default: the checkpoint's stored precision). Norms and biases stay f32` },
  name: { type: 'string', value: 'NAME', description: "general.name in the GGUF (default: the checkpoint folder's name)" },
  ...ENGINE_FLAGS,
};

const HELP = helpText(
  'pretrain export CHECKPOINT --out FILE.gguf [--dtype f32|f16|bf16|q8_0] [--format gguf|safetensors]',
  `Write a model for other runtimes. Schemes that fold (lns, layerscale, skipinit and their combinations with init-only parts) are folded into a plain Pre-LN model first; the others cannot be exported, and say why. ${CHECKPOINT_HELP}`,
  FLAGS,
);

export async function exportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('export', argv, FLAGS, 1);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!positionals[0]) throw new UsageError('export needs a checkpoint, run folder or .gguf file, e.g. pretrain export runs/<run> --out model.gguf');
  if (values.out === undefined) throw new UsageError('--out is required (FILE.gguf, or a folder for --format safetensors)');
  const format = String(values.format);
  const out = resolve(String(values.out));
  if (format === 'gguf' && !/\.gguf$/i.test(out)) throw new UsageError(`--out ${out}: a GGUF file's name ends in .gguf`);
  if (existsSync(out)) throw new UsageError(`--out ${out} already exists; remove it or choose another --out`);
  const dtypeFlag = values.dtype === undefined ? null : String(values.dtype).toLowerCase();
  if (dtypeFlag !== null && !(GGUF_DTYPES as readonly string[]).includes(dtypeFlag)) throw new UsageError(`--dtype must be one of ${GGUF_DTYPES.join(', ')}, got '${values.dtype}'`);
  if (format === 'safetensors' && dtypeFlag === 'q8_0') throw new UsageError('--dtype q8_0 is a GGUF type; safetensors checkpoints take f32, f16 or bf16');

  const dir = await checkpointDir(positionals[0]);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  await startEngine(values, log);
  const dtype = (dtypeFlag ?? storedDtype(dir).toLowerCase()) as GgufDtype;
  const { model, tokenizer } = openCheckpoint(dir);
  try {
    if (!model.scheme.foldable) {
      throw new UsageError(`cannot export norm scheme '${model.scheme.name}': its blocks scale the residual or normalise after it, so it has no plain Pre-LN equivalent for other runtimes (deepen itself runs it)`);
    }
    if (model.scheme.name !== 'pre') log(`folding '${model.scheme.name}' into a plain Pre-LN model (the same outputs)`);
    if (format === 'safetensors') {
      await saveCheckpoint(model, out, { fold: true, dtype: dtype.toUpperCase() as StorageDtype, files: tokenizer.files() });
      log(`wrote ${out}: a ${model.config.model_type} checkpoint (${dtype}) that transformers loads`);
      return 0;
    }
    const name = values.name === undefined ? positionals[0].replace(/\/+$/, '').split('/').pop() ?? 'deepen model' : String(values.name);
    let result;
    try {
      result = await exportGguf(model, tokenizer, out, { dtype, name });
    } catch (error) {
      if (error instanceof GgufError) throw new UsageError(error.message);
      throw error;
    }
    const types = Object.entries(result.tensorTypes).map(([t, n]) => `${n} ${t}`).join(', ');
    log(`wrote ${out} (${formatBytes(result.bytes)}): llama.cpp architecture ${result.arch}, ${model.config.num_hidden_layers} layers, tensors ${types}`);
    for (const w of result.warnings) log(`note: ${w}`);
    log(`run it: llama-cli -m ${out} -p "Once upon a time"   (or: ollama create NAME with "FROM ${out}" in a Modelfile)`);
    return 0;
  } finally {
    model.dispose();
  }
}
