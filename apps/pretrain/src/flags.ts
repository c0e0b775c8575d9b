// The flag parser is shared with the finetune service and lives in @deepen/backend; the
// commands keep importing it from here.
export { helpText, parseFlags, UsageError } from '@deepen/backend';
export type { FlagSpec, FlagValues } from '@deepen/backend';
