// The publishing process of one fine-tuning job, forked by the service once training has
// succeeded: uploads the fine-tuned model to the Hugging Face Hub with @deepen/hub. The
// tenant's token arrives over IPC and lives only in this process's memory; everything else is
// in the spec file. It reports through IPC only; the service owns the database.
import { HubError, publish, redact, type HubErrorKind, type ResolvedToken } from '@deepen/hub';
import { describeError, readSpec, runWorker, send as sendMessage } from './ipc.js';
import type { PublishCommand, PublishMessage, PublishSpec } from './protocol.js';

/** The job's error code for each way the Hub can fail. */
const CODE_OF: Record<HubErrorKind, string> = {
  unauthorized: 'hub_unauthorized',
  forbidden: 'hub_forbidden',
  'not-found': 'hub_not_found',
  conflict: 'hub_conflict',
  server: 'hub_unavailable',
  network: 'hub_unreachable',
  failed: 'publish_failed',
};

const send = (message: PublishMessage) => sendMessage(message);

/** Waits for the service to hand over the token (asked for once the listener is in place). */
function receiveToken(): Promise<ResolvedToken> {
  return new Promise((resolve) => {
    process.once('message', (message: PublishCommand) => resolve(message.token));
    void send({ type: 'ready' });
  });
}

/** Reports each file's upload at 0, 25, 50, 75 and 100%: enough to follow, few enough to keep as events. */
function quarterly(): (path: string, size: number, fraction: number) => void {
  const reported = new Map<string, number>();
  return (path, size, fraction) => {
    const quarter = Math.floor(Math.min(1, fraction) * 4);
    if (quarter <= (reported.get(path) ?? -1)) return;
    reported.set(path, quarter);
    void send({ type: 'progress', path, size, fraction: quarter / 4 });
  };
}

async function main(): Promise<number> {
  const spec = readSpec<PublishSpec>('publishing');
  if (spec === null) return 2;
  // The service is gone (killed or crashed): stop now; it publishes again when it restarts.
  process.on('disconnect', () => process.exit(0));
  const token = await receiveToken();
  const progress = quarterly();
  try {
    const result = await publish(spec.modelDir, {
      repo: spec.repo,
      token,
      private: spec.private,
      revision: spec.revision,
      commitMessage: spec.commitMessage,
      hubUrl: spec.hubUrl,
      card: spec.card,
      // No fallback to $HF_TOKEN or a token file: only the tenant's own token may be used.
      env: {},
      onProgress: (event) => {
        if (event.kind === 'file' && event.state === 'uploading') progress(event.path, event.size, event.fraction);
      },
      onRetry: (notice) => void send({ type: 'retry', request: notice.request, reason: notice.reason, attempt: notice.attempt, delayMs: notice.delayMs }),
    });
    await send({ type: 'published', url: result.url, commit: result.commit!.oid, created: result.created, files: result.files.map(({ path, size }) => ({ path, size })) });
    return 0;
  } catch (error) {
    const message = redact((error as Error)?.message ?? String(error), token.value);
    if (error instanceof HubError) {
      // The Hub's answer, which says what to do (a token without write access, ...).
      await send({ type: 'failed', code: CODE_OF[error.kind], status: error.status, message });
      return 1;
    }
    process.stderr.write(`${redact((error as Error)?.stack ?? String(error), token.value)}\n`);
    await send({ type: 'failed', code: 'publish_error', status: null, message: redact(`publishing stopped on ${describeError(error, { [spec.modelDir]: 'the fine-tuned model' })}; the service's log has the details`, token.value), detail: message });
    return 1;
  }
}

await runWorker(main);
