#!/usr/bin/env node
import { CorpusError } from '@deepen/data';
import { analyzeCommand } from './commands/analyze.js';
import { compareCommand } from './commands/compare.js';
import { exportCommand } from './commands/export.js';
import { evalCommand, generateCommand, infoCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { publishCommand } from './commands/publish.js';
import { trainCommand } from './commands/train.js';
import { UsageError } from './flags.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  train: { run: trainCommand, summary: 'pretrain a model (default: a small LNS model on the built-in corpus)' },
  compare: { run: compareCommand, summary: 'train the same model under several normalization schemes and report' },
  eval: { run: evalCommand, summary: 'perplexity of a checkpoint on a corpus' },
  generate: { run: generateCommand, summary: 'continue a prompt with a checkpoint' },
  analyze: { run: analyzeCommand, summary: 'measure how much each layer contributes, for one or more checkpoints' },
  prune: { run: pruneCommand, summary: 'remove layers (by index, Block Influence or angular distance) and optionally heal' },
  export: { run: exportCommand, summary: 'write a checkpoint as GGUF (llama.cpp, Ollama, LM Studio) or as a folded Hugging Face checkpoint' },
  publish: { run: publishCommand, summary: 'publish a checkpoint to the Hugging Face Hub with a generated model card' },
  info: { run: infoCommand, summary: 'config, parameter count, FLOPs per token and engine' },
};

const HELP = `pretrain: train LLaMA models under any normalization scheme (deepen).

Usage:
  pretrain <command> [options]      pretrain <command> --help for its options

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`)
  .join('\n')}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    process.stderr.write(`pretrain: unknown command '${command}'\n\n${HELP}`);
    return 2;
  }
  try {
    return await entry.run(rest);
  } catch (error) {
    // A mistake in what was asked for exits 2: a flag (UsageError), or the data of a file a flag
    // names (CorpusError: a missing --data path, an unreadable JSONL line, a missing text
    // field, each naming the file and line). Failures while working exit 1.
    if (error instanceof UsageError) {
      process.stderr.write(`pretrain ${command}: ${error.message}\n(see pretrain ${command} --help)\n`);
      return 2;
    }
    if (error instanceof CorpusError) {
      process.stderr.write(`pretrain ${command}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof Error) {
      process.stderr.write(`pretrain ${command}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv.slice(2));
