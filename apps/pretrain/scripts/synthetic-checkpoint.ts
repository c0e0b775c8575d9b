// Writes a randomly initialised checkpoint with the exact shape of a config.json (any family
// deepen loads) and a tokenizer folder's files: what a command costs on a model of that size
// can be measured before downloading gigabytes of weights. The weights are noise (std
// initializer_range), so its losses mean nothing; its timings and memory are real.
//
//   tsx --conditions=@deepen/source scripts/synthetic-checkpoint.ts CONFIG.json TOKENIZER_DIR OUT_DIR [F32|F16|BF16]
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { configFromJson, LlamaModel, saveCheckpoint } from '@deepen/models';

const [configPath, tokenizerDir, out, dtype = 'BF16'] = process.argv.slice(2);
if (!configPath || !tokenizerDir || !out || !['F32', 'F16', 'BF16'].includes(dtype)) {
  process.stderr.write('usage: synthetic-checkpoint.ts CONFIG.json TOKENIZER_DIR OUT_DIR [F32|F16|BF16]\n');
  process.exit(2);
}
await initBackend({ engine: 'cpu' });
const config = configFromJson(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
const started = performance.now();
const model = LlamaModel.create(config, { seed: 0 });
await saveCheckpoint(model, out, { dtype: dtype as 'BF16' });
model.dispose();
for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
  if (existsSync(join(tokenizerDir, file))) copyFileSync(join(tokenizerDir, file), join(out, file));
}
process.stdout.write(`${out}: ${config.model_type}, ${config.num_hidden_layers} layers, ${dtype}, written in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
