import type { ServiceContext } from '../context.js';
import { defineRoute, Reply, type Route } from '../http/routes.js';
import { Health } from '../schemas.js';

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
      auth: false,
      response: Health,
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
      response: { contentType: 'application/json', description: 'OpenAPI 3.1.' },
      errors: [],
      async handle() {
        return openApi();
      },
    }),
  ];
}
