import type { ServiceContext } from '../context.js';
import { defineRoute, Reply, type Route } from '../http/routes.js';
import { Health, OpenApiDocument, Readiness } from '../schemas.js';

export function systemRoutes(ctx: ServiceContext, openApi: () => unknown): Route[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/healthz',
      operationId: 'health',
      tag: 'Service',
      summary: 'Liveness: the process answers',
      auth: false,
      response: Health,
      errors: [],
      async handle() {
        return { status: 'ok' as const };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/readyz',
      operationId: 'readiness',
      tag: 'Service',
      summary: 'Readiness: the database answers and the service is not shutting down (503 otherwise)',
      description: 'On SIGTERM the service answers 503 here for its drain period (--drain-seconds) while it still serves other requests, then stops listening.',
      auth: false,
      response: Readiness,
      responses: { 503: { description: 'Not ready: shutting down, or the database does not answer.', body: Readiness } },
      errors: [],
      async handle() {
        const checks = { database: await ctx.store.ping().catch(() => false), accepting: ctx.accepting() };
        const ready = Object.values(checks).every(Boolean);
        return new Reply(ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks });
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/openapi.json',
      operationId: 'openapi',
      tag: 'Service',
      summary: 'This OpenAPI document',
      auth: false,
      response: OpenApiDocument,
      errors: [],
      async handle() {
        return openApi();
      },
    }),
  ];
}
