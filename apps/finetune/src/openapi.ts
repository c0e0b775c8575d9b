import { z } from 'zod';
import type { Route } from './http/routes.js';
import { components, ErrorResponse, MultipartUpload } from './schemas.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid request: the error names the field or parameter (`param`).',
  401: 'Missing or invalid API key.',
  404: 'Not found (also for ids that belong to another tenant).',
  405: 'Method not allowed on this path.',
  409: 'Conflicts with the current state, which a retry does not change (`x-should-retry: false`); only `job_busy` (the status moved during a cancel) may be retried (`true`).',
  413: 'The body or file is larger than the limit.',
  415: 'Unsupported Content-Type.',
  504: 'Generation took too long; the same request would again (`x-should-retry: false`).',
};

type JsonSchema = Record<string, unknown>;

/** A component reference for a registered schema, else the schema inline. */
function schemaOf(schema: z.ZodType): JsonSchema {
  const meta = components.get(schema);
  if (meta) return { $ref: `#/components/schemas/${meta.id}` };
  const { $schema: _s, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return json;
}

/** Statuses that the OpenAI SDKs would retry and whose answers say whether to (x-should-retry). */
const RETRY_HEADER: Record<number, string[]> = { 409: ['false', 'true'], 504: ['false'] };

function errorResponse(status: number) {
  return {
    description: STATUS_TEXT[status] ?? 'Error.',
    ...(RETRY_HEADER[status]
      ? { headers: { 'x-should-retry': { description: 'Whether a client should retry the request (the OpenAI SDKs obey it).', required: true, schema: { type: 'string', enum: RETRY_HEADER[status] } } } }
      : {}),
    content: { 'application/json': { schema: { $ref: `#/components/schemas/${components.get(ErrorResponse)!.id}` } } },
  };
}

/**
 * The OpenAPI 3.1 document, generated from the route table and the same zod schemas that
 * validate requests, so the two cannot drift apart.
 */
export function openApiDocument(routes: Route[], info: { version: string; url?: string }): JsonSchema {
  const generated = z.toJSONSchema(components, { io: 'input', unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, JsonSchema> };
  const schemas = Object.fromEntries(Object.entries(generated.schemas).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema]));
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = [
      ...route.paramNames.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries((route.query as z.ZodObject | undefined)?.shape ?? {}).map(([name, schema]) => {
        const json = schemaOf(schema as z.ZodType);
        return { name, in: 'query', required: !(schema as z.ZodType).safeParse(undefined).success, ...(json.description ? { description: json.description } : {}), schema: json };
      }),
    ];
    const ok =
      route.response instanceof z.ZodType
        ? {
            description: 'OK.',
            content: {
              'application/json': { schema: schemaOf(route.response) },
              ...(route.stream ? { 'text/event-stream': { schema: { type: 'string', description: 'Server-Sent Events (with stream=true).' } } } : {}),
            },
          }
        : { description: route.response.description, content: { [route.response.contentType]: { schema: { type: 'string' } } } };
    const statuses = [...new Set([...route.errors, ...(route.auth === false ? [] : [401])])].sort();
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      ...(route.auth === false ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body) } } } } : {}),
      ...(route.upload
        ? {
            requestBody: {
              required: true,
              content: {
                'multipart/form-data': { schema: { $ref: `#/components/schemas/${components.get(MultipartUpload)!.id}` } },
                'application/jsonl': { schema: { type: 'string', description: 'The JSONL file itself; purpose (and filename) in the query.' } },
              },
            },
          }
        : {}),
      responses: {
        200: ok,
        ...Object.fromEntries(Object.entries(route.responses ?? {}).map(([s, r]) => [s, { description: r.description, content: { 'application/json': { schema: schemaOf(r.body) } } }])),
        ...Object.fromEntries(statuses.map((s) => [s, errorResponse(s)])),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'deepen fine-tuning service',
      version: info.version,
      description: 'Supervised fine-tuning of deepen LLaMA models. Shaped like the OpenAI fine-tuning jobs API: ids, objects, list pages and error bodies follow it.',
    },
    ...(info.url ? { servers: [{ url: info.url }] } : {}),
    security: [{ bearerAuth: [] }],
    paths,
    components: { schemas, securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
  };
}
