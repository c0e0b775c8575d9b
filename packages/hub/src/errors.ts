import { HubApiError } from '@huggingface/hub';
import { networkErrorCode } from './http.js';
import { redact, tokenHelp, type ResolvedToken } from './token.js';

export type HubErrorKind = 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'server' | 'network' | 'failed';

/** A failed Hub operation, explained; `status` is the HTTP status where there was one. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly kind: HubErrorKind,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

export interface ErrorContext {
  /** What was being done, e.g. "uploading to owner/name". */
  action: string;
  repo: string;
  revision?: string;
  hubUrl: string;
  token: ResolvedToken | null;
  /** Reading (download) or writing (publish): a 403 means different things. */
  access: 'read' | 'write';
  retries: number;
}

/** What the server said, without the client's "URL: ..." trailer. */
function serverDetail(error: HubApiError): string {
  const data = error.data as { error?: unknown; message?: unknown } | undefined;
  const said = typeof data?.error === 'string' ? data.error : typeof data?.message === 'string' ? data.message : '';
  const text = said.trim().replace(/\s+/g, ' ');
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/**
 * Turns whatever the Hub client threw into a HubError whose message says what went wrong and
 * what to do about it. The token never appears in it, even if a server echoed it back.
 */
export function explainHubError(error: unknown, ctx: ErrorContext): HubError {
  if (error instanceof HubError) return error;
  const where = `${ctx.repo}${ctx.revision ? `@${ctx.revision}` : ''}`;
  const owner = ctx.repo.split('/')[0];
  const token = ctx.token?.value;
  let result: HubError;
  if (error instanceof HubApiError) {
    const status = error.statusCode;
    const detail = serverDetail(error);
    const said = detail ? ` (the Hub said: ${detail})` : '';
    if (status === 401) {
      result = new HubError(
        ctx.token
          ? `the Hub rejected the token from ${ctx.token.source} while ${ctx.action} (401 Unauthorized): it is invalid, expired or revoked; create one at ${ctx.hubUrl}/settings/tokens${said}`
          : ctx.access === 'read'
            ? `${where} could not be read without a token (401 Unauthorized): it does not exist, or it is private or gated; ${tokenHelp()}${said}`
            : `${ctx.action} needs a token (401 Unauthorized): ${tokenHelp()}${said}`,
        'unauthorized',
        status,
      );
    } else if (status === 403) {
      result = new HubError(
        ctx.access === 'write'
          ? `no write access to ${ctx.repo} while ${ctx.action} (403 Forbidden): the token from ${ctx.token?.source ?? '(none)'} cannot write to '${owner}'; use a token with write permission for that user or organization${said}`
          : `access to ${where} refused (403 Forbidden): the token from ${ctx.token?.source ?? '(none)'} may not read it (gated models need their terms accepted on the Hub)${said}`,
        'forbidden',
        status,
      );
    } else if (status === 404) {
      result = new HubError(
        `${where} not found while ${ctx.action} (404 Not Found): no such repository${ctx.revision ? ' or revision' : ''}, no namespace '${owner}', or it is private and the token cannot see it${said}`,
        'not-found',
        status,
      );
    } else if (status === 409 || status === 412) {
      result = new HubError(
        `conflicting revision for ${where} while ${ctx.action} (${status}): the branch moved while uploading, or '${ctx.revision ?? 'main'}' is not a branch that can take commits; try again or choose another revision${said}`,
        'conflict',
        status,
      );
    } else if (status >= 500 || status === 429 || status === 408) {
      result = new HubError(`the Hub kept failing while ${ctx.action} (${status}, after ${ctx.retries} retries); try again later${said}`, 'server', status);
    } else {
      result = new HubError(`${ctx.action} failed (${status})${said}`, 'failed', status);
    }
  } else {
    const code = networkErrorCode(error);
    const message = (error as Error)?.message ?? String(error);
    result =
      code !== null
        ? new HubError(`cannot reach ${ctx.hubUrl} while ${ctx.action} (${code}, after ${ctx.retries} retries)`, 'network', null)
        : new HubError(`${ctx.action} failed: ${message}`, 'failed', null);
  }
  const safe = new HubError(redact(result.message, token), result.kind, result.status);
  return safe;
}
