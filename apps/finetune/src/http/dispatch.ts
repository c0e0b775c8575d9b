import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ApiError, badRequest, tooLarge } from '../errors.js';
import { ID_PREFIX, newId } from '../ids.js';
import type { ApiKeys } from '../keys.js';
import { HANDLED, Reply, type Route } from './routes.js';

export interface DispatchOptions {
  routes: Route[];
  keys: ApiKeys;
  /** Largest JSON request body in bytes. */
  maxBodyBytes: number;
  log: (line: string) => void;
}

/** Turns the first validation issue into a 400 that names the field. */
export function validationError(error: z.ZodError, where: 'body' | 'query'): ApiError {
  const issue = error.issues[0] as z.core.$ZodIssue;
  const path = issue.path.map(String);
  const dotted = (parts: string[]) => parts.reduce((a, p) => (/^\d+$/.test(p) ? `${a}[${p}]` : a ? `${a}.${p}` : p), '');
  const kind = where === 'body' ? 'parameter' : 'query parameter';
  if (issue.code === 'unrecognized_keys') {
    const param = dotted([...path, issue.keys[0] as string]);
    return badRequest(`Unknown ${kind} '${param}'.`, 'unknown_parameter', param);
  }
  const param = dotted(path);
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return badRequest(`Missing required ${kind} '${param}'.`, 'missing_required_parameter', param);
  }
  if (param === '') return badRequest(`Invalid request ${where}: ${issue.message.replace(/^Invalid input: /, '')}.`, 'invalid_type', null);
  return badRequest(`Invalid value for ${kind} '${param}': ${issue.message.replace(/^Invalid input: /, '')}.`, issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value', param);
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query'): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (!result.success) throw validationError(result.error, where);
  return result.data;
}

/**
 * Reads and drops the rest of a request body the service will not use, so that the client,
 * still sending, gets the answer instead of a reset connection. Resolves true once the body
 * has ended; false when it is too large or slow to wait for (the connection is then closed).
 */
function drainBody(req: IncomingMessage, maxBytes: number, maxMs: number): Promise<boolean> {
  if (req.complete || req.destroyed) return Promise.resolve(req.complete);
  return new Promise((resolve) => {
    let dropped = 0;
    const timer = setTimeout(() => done(false), maxMs);
    const done = (ended: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      resolve(ended);
    };
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > maxBytes) done(false);
    };
    const onEnd = () => done(true);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', () => done(false));
    req.resume();
  });
}

/** Reads a JSON request body within the size limit. */
export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, `Expected a JSON body (Content-Type: application/json), got ${type === '' ? 'no Content-Type' : `'${type}'`}.`, 'invalid_request_error', 'unsupported_media_type');
  }
  const tooBig = () => tooLarge(`The request body is larger than the ${maxBytes}-byte limit.`, 'request_too_large');
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw tooBig();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooBig();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw badRequest('The request body is empty; expected a JSON object.', 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`The request body is not valid JSON: ${(error as Error).message}.`, 'invalid_json');
  }
}

function queryObject(search: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(search)) {
    if (key in out) throw badRequest(`Query parameter '${key}' is given more than once.`, 'invalid_value', key);
    out[key] = value;
  }
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function authenticate(req: IncomingMessage, keys: ApiKeys): string {
  const header = req.headers.authorization;
  const challenge = { 'www-authenticate': 'Bearer realm="deepen-finetune"' };
  if (!header) throw new ApiError(401, 'Missing API key: send it as "Authorization: Bearer <key>".', 'authentication_error', 'missing_api_key', null, challenge);
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const tenant = match ? keys.tenantOf(match[1] as string) : null;
  if (tenant === null) throw new ApiError(401, 'Invalid API key.', 'authentication_error', 'invalid_api_key', null, challenge);
  return tenant;
}

const noQuery = z.strictObject({});

/** The request handler of the service: routing, authentication, validation, errors and the access log. */
export function dispatcher(options: DispatchOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    const requestId = newId(ID_PREFIX.request);
    res.setHeader('x-request-id', requestId);
    let tenant = '-';
    const raw = req.url ?? '/';
    const queryAt = raw.indexOf('?');
    const path = queryAt < 0 ? raw : raw.slice(0, queryAt);
    const run = async (): Promise<void> => {
      // Paths are matched as sent, never normalised: a '.' or '..' segment matches no route.
      const candidates = options.routes.filter((r) => r.pattern.test(path));
      const route = candidates.find((r) => r.method === req.method);
      if (!route) {
        if (candidates.length > 0) {
          const allow = [...new Set(candidates.map((r) => r.method))].join(', ');
          throw new ApiError(405, `Method ${req.method} is not allowed on ${path}; allowed: ${allow}.`, 'invalid_request_error', 'method_not_allowed', null, { allow });
        }
        throw new ApiError(404, `Unknown route: ${req.method} ${path}.`, 'not_found_error', 'unknown_route');
      }
      const values = route.pattern.exec(path)!.slice(1);
      const params: Record<string, string> = {};
      route.paramNames.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(values[i] as string);
        } catch {
          throw new ApiError(404, `Unknown route: ${req.method} ${path}.`, 'not_found_error', 'unknown_route');
        }
      });
      if (route.auth !== false) tenant = authenticate(req, options.keys);
      const query = parseWith(route.query ?? noQuery, queryObject(queryAt < 0 ? '' : raw.slice(queryAt + 1)), 'query');
      const body = route.body ? parseWith(route.body, await readJson(req, options.maxBodyBytes), 'body') : undefined;
      const result = await route.handle({ req, res, params, query, body, tenant: tenant === '-' ? '' : tenant, requestId });
      if (result === HANDLED) return;
      if (result instanceof Reply) sendJson(res, result.status, result.body, result.headers);
      else sendJson(res, 200, result);
    };
    run()
      .catch(async (error: unknown) => {
        const apiError =
          error instanceof ApiError
            ? error
            : new ApiError(500, `Internal error (request ${requestId}); the service log has the details.`, 'server_error', 'internal_error');
        if (!(error instanceof ApiError)) options.log(`error in ${req.method} ${path} (${requestId}): ${(error as Error)?.stack ?? String(error)}`);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (await drainBody(req, 4 * 1024 * 1024, 2000)) {
          sendJson(res, apiError.status, apiError.toJSON(), apiError.headers);
          return;
        }
        // Too much left to read: answer, then close the connection.
        sendJson(res, apiError.status, apiError.toJSON(), { ...apiError.headers, connection: 'close' });
        const socket = req.socket;
        res.once('finish', () => setTimeout(() => socket?.destroy(), 1000).unref());
      })
      .finally(() => {
        const log = () => options.log(`${req.method} ${path} ${res.statusCode} ${(performance.now() - started).toFixed(0)}ms tenant=${tenant} ${requestId}`);
        if (res.writableFinished) log();
        else res.once('close', log);
      });
  };
}
