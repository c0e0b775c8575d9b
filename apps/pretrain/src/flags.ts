// The flag parser is shared with the finetune service and lives in @deepen/core; the commands
// keep importing it from here.
export { helpText, parseFlags, UsageError } from '@deepen/core';
export type { FlagSpec, FlagValues } from '@deepen/core';
