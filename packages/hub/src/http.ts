import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

export interface RetryOptions {
  /** Further attempts after the first for a transient failure. Default 4. */
  retries?: number;
  /** Delay before the first retry; doubles each time (with jitter). Default 1000 ms. */
  baseDelayMs?: number;
  /** Longest delay between attempts, also the cap on a server's Retry-After. Default 30 s. */
  maxDelayMs?: number;
}

export interface RetryNotice {
  /** Method, origin and path of the request; never its query (presigned URLs carry credentials there). */
  request: string;
  attempt: number;
  reason: string;
  delayMs: number;
}

/** Statuses worth another try: timeouts, rate limits and the gateway errors a busy Hub returns. */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The system error code behind a failed request (fetch wraps it in `cause`), if any. */
export function networkErrorCode(error: unknown): string | null {
  // A stream aborted by the Hub client carries only the message of what went wrong.
  if (typeof error === 'string') return /terminated|fetch failed|socket|ECONNRESET/i.test(error) ? 'network error' : null;
  for (let e = error as { code?: unknown; cause?: unknown; name?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.name === 'AbortError') return null;
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  }
  const message = (error as Error | undefined)?.message;
  return message === 'fetch failed' || message === 'terminated' ? 'network error' : null;
}

/** `PUT https://host/path`, without the query string. */
export function describeRequest(input: string | URL | Request, method = 'GET'): string {
  const url = new URL(input instanceof Request ? input.url : input.toString());
  return `${method} ${url.origin}${url.pathname}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function retryDelay(attempt: number, options: Required<RetryOptions>, retryAfter: string | null): number {
  const seconds = retryAfter === null ? NaN : Number(retryAfter);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, options.maxDelayMs);
  const exponential = options.baseDelayMs * 2 ** (attempt - 1);
  return Math.min(exponential * (0.75 + Math.random() * 0.5), options.maxDelayMs);
}

/**
 * Wraps fetch so that transient failures (the statuses above, dropped or refused connections)
 * are tried again with exponential backoff. Every request the Hub client makes is safe to
 * repeat: reads, uploads of content-addressed objects, and commits that replace files with
 * the same bytes.
 */
export function withRetries(base: typeof fetch, options: RetryOptions = {}, onRetry?: (notice: RetryNotice) => void): typeof fetch {
  const settings: Required<RetryOptions> = { retries: options.retries ?? 4, baseDelayMs: options.baseDelayMs ?? 1000, maxDelayMs: options.maxDelayMs ?? 30_000 };
  return async (input, init) => {
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let retryAfter: string | null = null;
      try {
        const response = await base(input, init);
        if (!TRANSIENT_STATUS.has(response.status) || attempt > settings.retries) return response;
        reason = `${response.status} ${response.statusText}`.trim();
        retryAfter = response.headers.get('retry-after');
        await response.body?.cancel();
      } catch (error) {
        const code = networkErrorCode(error);
        if (code === null || attempt > settings.retries) throw error;
        reason = code;
      }
      const delayMs = retryDelay(attempt, settings, retryAfter);
      onRetry?.({ request: describeRequest(input as string | URL | Request, init?.method ?? 'GET'), attempt, reason, delayMs });
      await sleep(delayMs);
    }
  };
}

/**
 * PUTs a Blob with node:http(s) so that bytes sent can be reported; fetch gives no upload
 * progress in Node.js, and a multi-gigabyte shard would otherwise sit silent for minutes.
 */
function putBlob(url: URL, init: RequestInit, body: Blob, onProgress: (fraction: number) => void): Promise<Response> {
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, key) => (headers[key] = value));
  headers['content-length'] = String(body.size);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Response>((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const responseHeaders = new Headers();
        for (const [key, value] of Object.entries(res.headers)) if (value !== undefined) responseHeaders.set(key, Array.isArray(value) ? value.join(', ') : value);
        const status = res.statusCode ?? 502;
        resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: responseHeaders }));
      });
    });
    req.on('error', reject);
    let sent = 0;
    const source = Readable.fromWeb(body.stream() as NodeReadableStream<Uint8Array>);
    source.on('data', (chunk: Buffer) => {
      sent += chunk.byteLength;
      onProgress(body.size === 0 ? 1 : sent / body.size);
    });
    source.on('error', (error) => req.destroy(error));
    source.pipe(req);
  });
}

interface ProgressHint {
  progressCallback?: (fraction: number) => void;
  /** Multipart uploads: this request's part (0-based) and the file's part count. */
  part?: number;
  numParts?: number;
}

/**
 * A fetch for the Hub client: uploads whose caller asked for progress (the library marks them
 * with a `progressHint`) go through putBlob, everything else through fetch. Parts of a
 * multipart upload add up to one fraction for their file.
 */
export function withUploadProgress(base: typeof fetch): typeof fetch {
  const partsSent = new WeakMap<(fraction: number) => void, number[]>();
  return async (input, init) => {
    const hint = (init as { progressHint?: ProgressHint } | undefined)?.progressHint;
    const callback = hint?.progressCallback;
    if (init?.method !== 'PUT' || !(init.body instanceof Blob) || !callback || input instanceof Request) return base(input, init);
    let report = callback;
    if (hint.part !== undefined && hint.numParts) {
      const { part, numParts } = hint;
      const parts = partsSent.get(callback) ?? new Array<number>(numParts).fill(0);
      partsSent.set(callback, parts);
      report = (fraction) => {
        parts[part] = fraction;
        callback(parts.reduce((a, b) => a + b, 0) / numParts);
      };
    }
    return putBlob(new URL(input.toString()), init, init.body, report);
  };
}
