import { validateRepoId } from '@deepen/hub';
import { z } from 'zod';
import { JOB_STATUSES } from './store/types.js';

/**
 * Every request and response body of the API, defined once: requests are validated against
 * these schemas (unknown fields rejected) and the OpenAPI document is generated from them.
 * Schemas registered here become named components of that document.
 */
export const components = z.registry<{ id: string; description?: string }>();
const named = <T extends z.ZodType>(id: string, schema: T, description?: string): T => {
  components.add(schema, { id, ...(description ? { description } : {}) });
  return schema;
};

const auto = <T extends z.ZodType>(schema: T, description: string) => z.union([z.literal('auto'), schema]).optional().describe(`${description} Default "auto".`);

/** Names of base models and suffixes: safe as path components and inside model ids. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const Hyperparameters = named(
  'Hyperparameters',
  z.strictObject({
    n_epochs: auto(z.int().min(1).max(100), 'Passes over the training file. "auto": 3.'),
    batch_size: auto(z.int().min(1).max(256), 'Examples per optimizer step. "auto": a tenth of the training examples, from 1 to 16.'),
    learning_rate: auto(z.number().gt(0).max(1), 'Peak learning rate (Adam), reached after the warmup and decayed linearly to 0. "auto": 1e-4.'),
    warmup: auto(z.int().min(0), 'Linear warmup steps. "auto": a tenth of the steps.'),
    max_seq_len: auto(z.int().min(8).max(1_048_576), "Longest example in tokens; longer ones lose their end (a warning event says how many). \"auto\": the model's context length."),
  }),
  'Training settings. Every field may be left out or "auto".',
);

/** Branch names a commit can go to: git's rules, narrowed to characters that need no escaping. */
const BRANCH_PATTERN = /^(?![./-])(?!.*(?:\.\.|\/\/|\/\.|\.lock$|[./]$))[A-Za-z0-9._/-]{1,128}$/;

export const PublishTarget = named(
  'PublishTarget',
  z.strictObject({
    repo: z
      .string()
      .max(193)
      .superRefine((repo, ctx) => {
        try {
          validateRepoId(repo);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
        }
      })
      .describe('Hugging Face model repository, owner/name; created if missing. The token used is the tenant\'s own, configured on the service.'),
    private: z.boolean().optional().describe('Visibility of a repository the upload creates (an existing one keeps its own). Default true.'),
    revision: z
      .string()
      .regex(BRANCH_PATTERN, "must be a branch name: letters, digits, '.', '_', '-' and '/', not starting with '.', '-' or '/', without '..' or '//'")
      .optional()
      .describe('Branch to commit to, created from main if missing. Default "main".'),
  }),
  'Publish the fine-tuned model to the Hugging Face Hub once training succeeds: config, weights, tokenizer and a generated model card, in one commit.',
);

export const CreateJobRequest = named(
  'CreateFineTuningJobRequest',
  z.strictObject({
    model: z.string().min(1).max(256).describe('A base model from GET /v1/models.'),
    training_file: z.string().min(1).max(64).describe('Id of an uploaded file with purpose fine-tune.'),
    validation_file: z.string().min(1).max(64).nullable().optional().describe('Id of an uploaded file whose loss and token accuracy are measured after every epoch.'),
    hyperparameters: Hyperparameters.optional(),
    suffix: z.string().regex(NAME_PATTERN, 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit').nullable().optional().describe('Part of the fine-tuned model id.'),
    seed: z.int().min(0).max(2_147_483_647).optional().describe('Seed of the data order (default: random, reported on the job).'),
    publish: PublishTarget.optional(),
  }),
);

const limit = z.coerce.number<string>().int().min(1).max(100).default(20).describe('Items per page, 1 to 100.');
const after = z.string().min(1).max(128).optional().describe('Id of the last item of the previous page.');

export const PageQuery = z.strictObject({ after, limit });
export const FilesQuery = z.strictObject({ after, limit, purpose: z.literal('fine-tune').optional() });
export const EventsQuery = z.strictObject({
  after,
  limit,
  stream: z.enum(['true', 'false']).optional().describe('true: a Server-Sent Events stream of every event from the first (or after `after` / Last-Event-ID) until the job ends.'),
});
export const UploadQuery = z.strictObject({
  purpose: z.literal('fine-tune').optional().describe('Required with a raw JSONL body: fine-tune.'),
  filename: z.string().min(1).max(255).optional().describe('Name to record for a raw JSONL body.'),
});

export const MultipartUpload = named(
  'FileUpload',
  z.strictObject({
    purpose: z.literal('fine-tune'),
    file: z.string().describe('JSONL: one {"prompt", "completion"} or {"messages": [{"role", "content"}]} object per line.'),
  }),
);

const ChatMessage = named(
  'ChatMessage',
  z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(1_000_000) }),
);

const sampling = {
  max_tokens: z.int().min(1).max(65_536).default(16).describe('New tokens at most.'),
  temperature: z.number().min(0).max(2).default(1).describe('0 decodes greedily.'),
  top_p: z.number().gt(0).max(1).default(1).describe('Nucleus sampling mass.'),
  seed: z.int().min(0).max(2_147_483_647).optional().describe('Sampling seed (default: random).'),
  stream: z.literal(false, 'streaming is not supported; leave stream out or set it to false').optional(),
};

export const CompletionRequest = named(
  'CompletionRequest',
  z.strictObject({
    model: z.string().min(1).max(256).describe('A base model, a fine-tuned model or a checkpoint model id.'),
    prompt: z.string().max(1_000_000).describe('Text to continue; tokenized as training prompts are.'),
    ...sampling,
  }),
);

export const ChatCompletionRequest = named(
  'ChatCompletionRequest',
  z.strictObject({
    model: z.string().min(1).max(256),
    messages: z.array(ChatMessage).min(1).max(1000).describe('The conversation; rendered with the chat template used in training.'),
    ...sampling,
  }),
);

const list = <T extends z.ZodType>(item: T) => z.object({ object: z.literal('list'), data: z.array(item), has_more: z.boolean() });

export const ErrorResponse = named(
  'Error',
  z.object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable().describe('The field or parameter at fault, as a dotted path.'),
      code: z.string().nullable(),
    }),
  }),
);

export const FileObject = named(
  'File',
  z.object({
    id: z.string(),
    object: z.literal('file'),
    bytes: z.int(),
    created_at: z.int(),
    filename: z.string(),
    purpose: z.literal('fine-tune'),
    status: z.literal('processed'),
    status_details: z.null(),
    format: z.enum(['prompt_completion', 'chat']),
    examples: z.int(),
  }),
);
export const FileList = named('FileList', list(FileObject));
export const FileDeleted = named('FileDeleted', z.object({ id: z.string(), object: z.literal('file'), deleted: z.literal(true) }));

const JobError = z.object({ code: z.string(), message: z.string(), param: z.string().nullable() });

export const PUBLISH_STATUSES = ['pending', 'publishing', 'published', 'failed', 'skipped'] as const;
export const PublishResult = named(
  'PublishResult',
  z.object({
    repo: z.string(),
    private: z.boolean(),
    revision: z.string(),
    status: z
      .enum(PUBLISH_STATUSES)
      .describe(
        'pending: waiting for training to succeed; publishing: uploading; published: committed (url, commit); failed: the upload was given up (error), the fine-tuned model stays usable; skipped: the job did not succeed, nothing was published.',
      ),
    url: z.string().nullable().describe('The repository (or branch) page, once published.'),
    commit: z.string().nullable().describe('The commit id, once published.'),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    finished_at: z.int().nullable(),
  }),
  "A job's publish target and what became of it.",
);
export const FineTuningJob = named(
  'FineTuningJob',
  z.object({
    id: z.string(),
    object: z.literal('fine_tuning.job'),
    created_at: z.int(),
    started_at: z.int().nullable(),
    finished_at: z.int().nullable(),
    model: z.string(),
    fine_tuned_model: z.string().nullable().describe('Set once the job succeeds.'),
    organization_id: z.string().describe('The tenant of the API key.'),
    status: z.enum(JOB_STATUSES),
    hyperparameters: z.object({ n_epochs: z.int(), batch_size: z.int(), learning_rate: z.number(), warmup: z.int(), max_seq_len: z.int() }),
    total_steps: z.int(),
    training_file: z.string(),
    validation_file: z.string().nullable(),
    result_files: z.array(z.string()),
    trained_tokens: z.int().nullable(),
    error: JobError.nullable(),
    seed: z.int(),
    suffix: z.string().nullable(),
    estimated_finish: z.null(),
    publish: PublishResult.nullable().describe('The publish target, if the job has one. A failed upload leaves the job succeeded.'),
  }),
);
export const FineTuningJobList = named('FineTuningJobList', list(FineTuningJob));

export const JobEvent = named(
  'FineTuningJobEvent',
  z.object({
    id: z.string(),
    object: z.literal('fine_tuning.job.event'),
    created_at: z.int(),
    level: z.enum(['info', 'warn', 'error']),
    message: z.string(),
    type: z.enum(['message', 'metrics']),
    data: z.record(z.string(), z.unknown()).nullable(),
  }),
);
export const JobEventList = named('FineTuningJobEventList', list(JobEvent));

export const JobCheckpoint = named(
  'FineTuningJobCheckpoint',
  z.object({
    id: z.string(),
    object: z.literal('fine_tuning.job.checkpoint'),
    created_at: z.int(),
    fine_tuned_model_checkpoint: z.string().describe('A model id: POST /v1/completions generates from this checkpoint.'),
    fine_tuning_job_id: z.string(),
    step_number: z.int(),
    metrics: z.object({
      step: z.int(),
      epoch: z.int(),
      train_loss: z.number(),
      valid_loss: z.number().nullable(),
      valid_mean_token_accuracy: z.number().nullable(),
    }),
  }),
);
export const JobCheckpointList = named('FineTuningJobCheckpointList', list(JobCheckpoint));

export const ModelObject = named(
  'Model',
  z.object({
    id: z.string(),
    object: z.literal('model'),
    created: z.int(),
    owned_by: z.string().describe('"system" for base models, the tenant for its fine-tuned models.'),
    context_length: z.int(),
  }),
);
export const ModelList = named('ModelList', z.object({ object: z.literal('list'), data: z.array(ModelObject) }));

const usage = z.object({ prompt_tokens: z.int(), completion_tokens: z.int(), total_tokens: z.int() });
const finishReason = z.enum(['stop', 'length']);
export const Completion = named(
  'Completion',
  z.object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.int(),
    model: z.string(),
    choices: z.array(z.object({ text: z.string(), index: z.int(), logprobs: z.null(), finish_reason: finishReason })),
    usage,
  }),
);
export const ChatCompletion = named(
  'ChatCompletion',
  z.object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.int(),
    model: z.string(),
    choices: z.array(z.object({ index: z.int(), message: z.object({ role: z.literal('assistant'), content: z.string() }), finish_reason: finishReason })),
    usage,
  }),
);

export const Health = named('Health', z.object({ status: z.literal('ok') }));

export const Readiness = named(
  'Readiness',
  z.object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.object({ database: z.boolean().describe('The database answers.'), accepting: z.boolean().describe('The service is not shutting down.') }),
  }),
  'ready (200) when every check holds, else not_ready (503).',
);

/** This service's OpenAPI document, as far as clients rely on its shape. */
export const OpenApiDocument = named(
  'OpenApiDocument',
  z.looseObject({
    openapi: z.string(),
    info: z.looseObject({ title: z.string(), version: z.string() }),
    paths: z.record(z.string(), z.looseObject({})),
    components: z.looseObject({}),
  }),
  'An OpenAPI 3.1 document.',
);
