import { randomInt } from 'node:crypto';
import type { z } from 'zod';
import type { ServiceContext } from '../context.js';
import { ApiError } from '../errors.js';
import { ID_PREFIX, newId, nowSeconds } from '../ids.js';
import { defineRoute, type Route } from '../http/routes.js';
import { ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest, ModelList, ModelObject } from '../schemas.js';
import type { CompletionJob } from '../worker/protocol.js';

const modelNotFound = (id: string, param: string | null) =>
  new ApiError(404, `The model '${id}' does not exist or you do not have access to it.`, 'not_found_error', 'model_not_found', param);

type Sampling = Pick<z.infer<typeof CompletionRequest>, 'model' | 'max_tokens' | 'temperature' | 'top_p' | 'seed'>;

async function generate(ctx: ServiceContext, tenant: string, request: Sampling, input: CompletionJob['input']) {
  const model = await ctx.models.resolve(tenant, request.model);
  if (!model) throw modelNotFound(request.model, 'model');
  return ctx.inference.complete({ modelDir: model.dir, input, maxTokens: request.max_tokens, temperature: request.temperature, topP: request.top_p, seed: request.seed ?? randomInt(2_147_483_647) });
}

const usage = (r: { promptTokens: number; completionTokens: number }) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens });

export function modelRoutes(ctx: ServiceContext): Route[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/v1/models',
      operationId: 'listModels',
      tag: 'Models',
      summary: "Base models and the tenant's fine-tuned models",
      response: ModelList,
      errors: [],
      async handle({ tenant }) {
        return { object: 'list' as const, data: await ctx.models.list(tenant) };
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/models/{model}',
      operationId: 'retrieveModel',
      tag: 'Models',
      summary: 'Retrieve a model',
      response: ModelObject,
      errors: [404],
      async handle({ params, tenant }) {
        const model = await ctx.models.describe(tenant, params.model as string);
        if (!model) throw modelNotFound(params.model as string, null);
        return model;
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/completions',
      operationId: 'createCompletion',
      tag: 'Completions',
      summary: 'Continue a prompt with a base model, a fine-tuned model or a checkpoint',
      description: 'The prompt is tokenized as training prompts are (with the beginning-of-sequence token); generation ends at the end-of-sequence token or after max_tokens.',
      body: CompletionRequest,
      response: Completion,
      errors: [400, 404, 413, 415, 504],
      async handle({ body, tenant }) {
        const result = await generate(ctx, tenant, body, { kind: 'text', prompt: body.prompt });
        return {
          id: newId(ID_PREFIX.completion),
          object: 'text_completion' as const,
          created: nowSeconds(),
          model: body.model,
          choices: [{ text: result.text, index: 0, logprobs: null, finish_reason: result.finishReason }],
          usage: usage(result),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/chat/completions',
      operationId: 'createChatCompletion',
      tag: 'Completions',
      summary: 'Reply to a conversation (for models fine-tuned on messages)',
      description: 'The conversation is rendered with the chat template used in training, followed by the assistant header.',
      body: ChatCompletionRequest,
      response: ChatCompletion,
      errors: [400, 404, 413, 415, 504],
      async handle({ body, tenant }) {
        const result = await generate(ctx, tenant, body, { kind: 'chat', messages: body.messages });
        return {
          id: newId(ID_PREFIX.chatCompletion),
          object: 'chat.completion' as const,
          created: nowSeconds(),
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant' as const, content: result.text }, finish_reason: result.finishReason }],
          usage: usage(result),
        };
      },
    }),
  ];
}
