/** The `type` of an error body, as in the OpenAI API. */
export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'conflict_error' | 'server_error';

/**
 * An error the API answers with: the HTTP status and the body
 * `{ "error": { "message", "type", "param", "code" } }`. `param` names the field (dotted path,
 * e.g. `hyperparameters.n_epochs`) or query parameter at fault.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly code: string | null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/**
 * The OpenAI SDKs retry answers 408, 409, 429 and 5xx on their own (twice by default) unless
 * the `x-should-retry` header says otherwise. An error that the same request would meet again
 * says `false`; one that another try may well get past says `true`.
 */
export const shouldRetry = (retry: boolean): Record<string, string> => ({ 'x-should-retry': String(retry) });

export const badRequest = (message: string, code: string, param: string | null = null) => new ApiError(400, message, 'invalid_request_error', code, param);

/** 404 that reads the same whether the thing does not exist or belongs to another tenant. */
export const notFound = (what: string, id: string, code: string, param: string | null = null) =>
  new ApiError(404, `No ${what} found with id '${id}'.`, 'not_found_error', code, param);

/** 409: the request conflicts with the current state, which a retry does not change (unless `retry` says it might). */
export const conflict = (message: string, code: string, param: string | null = null, retry = false) => new ApiError(409, message, 'conflict_error', code, param, shouldRetry(retry));

export const tooLarge = (message: string, code: string, param: string | null = null) => new ApiError(413, message, 'invalid_request_error', code, param);
