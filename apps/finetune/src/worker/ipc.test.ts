import { describe, expect, it } from 'vitest';
import { describeError } from './ipc.js';

describe('describeError', () => {
  const places = { '/srv/models/base': 'the base model', '/srv/jobs/ftjob-1': "the job's folder", '/srv/jobs/ftjob-1/run': "the job's run folder" };

  it('names the places a worker knows for what they are', () => {
    expect(describeError(new Error('/srv/models/base/model.safetensors: weights file not found'), places)).toBe("an unexpected error: the base model's model.safetensors: weights file not found");
    expect(describeError(new Error("ENOSPC: no space left on device, write '/srv/jobs/ftjob-1/run/metrics.jsonl'"), places)).toBe(
      "an unexpected error: ENOSPC: no space left on device, write 'the job's run folder's metrics.jsonl'",
    );
    expect(describeError(new RangeError('Invalid array length'), places)).toBe('an unexpected error: Invalid array length');
  });

  it('gives only the kind of an error whose message names another place on the server', () => {
    const error = Object.assign(new Error("ENOENT: no such file or directory, open '/usr/lib/x/y.node'"), { code: 'ENOENT' });
    expect(describeError(error, places)).toBe('an unexpected error (ENOENT)');
    expect(describeError(new TypeError('cannot read /etc/deepen/settings'), places)).toBe('an unexpected error (TypeError)');
  });
});
