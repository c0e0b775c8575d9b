import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

type Infer<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RequestContext<Q, B> {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters, percent-decoded. */
  params: Record<string, string>;
  query: Q;
  body: B;
  /** The tenant of the API key (empty on routes without authentication). */
  tenant: string;
  requestId: string;
}

/** A response other than 200 with a JSON body. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** Returned by handlers that wrote the response themselves (streams, file contents). */
export const HANDLED = Symbol('handled');

export interface RouteSpec<Q extends z.ZodType | undefined, B extends z.ZodType | undefined> {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI-style template, e.g. /v1/files/{file_id}. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Bearer API key required (default true). */
  auth?: boolean;
  /** Query parameters; anything else in the query string is rejected. */
  query?: Q;
  /** A JSON request body. */
  body?: B;
  /** Documentation of a body the handler reads itself (uploads). */
  upload?: boolean;
  /** The 200 response: a body schema, or a content type the handler writes itself. */
  response: z.ZodType | { contentType: string; description: string };
  /** Statuses besides 200 answered with a body of their own rather than an error (readiness's 503). */
  responses?: Record<number, { description: string; body: z.ZodType }>;
  /** Also answers with a Server-Sent Events stream (documented beside the JSON). */
  stream?: boolean;
  /** Error statuses this route can answer with, for the document (401 is implied by auth). */
  errors: number[];
  handle(ctx: RequestContext<Infer<Q>, Infer<B>>): Promise<unknown>;
}

export type Route = RouteSpec<z.ZodType | undefined, z.ZodType | undefined> & { pattern: RegExp; paramNames: string[] };

/** Declares a route; its handler gets the query and body typed by their schemas. */
export function defineRoute<Q extends z.ZodType | undefined = undefined, B extends z.ZodType | undefined = undefined>(spec: RouteSpec<Q, B>): Route {
  const paramNames: string[] = [];
  const source = spec.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
    paramNames.push(name);
    return '([^/]+)';
  });
  return { ...(spec as unknown as RouteSpec<z.ZodType | undefined, z.ZodType | undefined>), pattern: new RegExp(`^${source}$`), paramNames };
}
