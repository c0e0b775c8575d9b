// Chat templates rendered with Hugging Face's @huggingface/jinja the way transformers'
// apply_chat_template renders them with Python's jinja2 (trim_blocks and lstrip_blocks, which
// @huggingface/jinja's Template always applies; `raise_exception`, `strftime_now` and a
// `tojson` that does not escape HTML, which it implements). The tests compare the rendering
// with jinja2's on the real templates.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { TokenizerError } from './tokenizer-config.js';

/**
 * One message of a conversation as templates read it: role and content. Any other fields of
 * the objects passed (reasoning_content, tool_calls, ...) reach the template too.
 */
export interface ChatTemplateMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant reply (the model's turn comes next). Default false. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking`, `date_string`); they override the special tokens, as in transformers. */
  variables?: Record<string, unknown>;
  /** The time `strftime_now` formats; default now. Fixing it makes date-stamped templates reproducible. */
  date?: Date;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * Python's `datetime.strftime` in the C locale, for the directives templates use.
 * @huggingface/jinja's own strftime_now names months in the process's locale and knows fewer
 * directives, so a template could render differently from transformers on another machine.
 */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const dayOfYear = Math.floor((Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) - Date.UTC(date.getFullYear(), 0, 1)) / 86_400_000) + 1;
  return format.replace(/%(.)/g, (whole, directive: string) => {
    switch (directive) {
      case 'Y':
        return String(date.getFullYear());
      case 'y':
        return pad(date.getFullYear() % 100);
      case 'm':
        return pad(date.getMonth() + 1);
      case 'd':
        return pad(date.getDate());
      case 'j':
        return pad(dayOfYear, 3);
      case 'B':
        return MONTHS[date.getMonth()] as string;
      case 'b':
        return (MONTHS[date.getMonth()] as string).slice(0, 3);
      case 'A':
        return DAYS[date.getDay()] as string;
      case 'a':
        return (DAYS[date.getDay()] as string).slice(0, 3);
      case 'H':
        return pad(date.getHours());
      case 'I':
        return pad(date.getHours() % 12 === 0 ? 12 : date.getHours() % 12);
      case 'p':
        return date.getHours() < 12 ? 'AM' : 'PM';
      case 'M':
        return pad(date.getMinutes());
      case 'S':
        return pad(date.getSeconds());
      case '%':
        return '%';
      default:
        throw new TokenizerError(`chat template: strftime_now does not support ${whole}`);
    }
  });
}

/** Python's range(stop) / range(start, stop[, step]). */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new TokenizerError('chat template: range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** A parsed chat template, rendered as transformers' apply_chat_template renders it. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly tokenVariables: Readonly<Record<string, unknown>> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new TokenizerError(`chat template does not parse: ${(error as Error).message}`);
    }
  }

  render(messages: readonly ChatTemplateMessage[], options: ChatTemplateOptions = {}): string {
    const date = options.date ?? new Date();
    // Template.render declares @huggingface/jinja's globals and then refuses to redeclare
    // strftime_now, so the environment is built here: the same globals (Python's literals,
    // range, raise_exception), a C-locale strftime_now, then the variables transformers passes.
    const env = new Environment();
    const variables: Record<string, unknown> = {
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      range,
      raise_exception: (message: unknown) => {
        throw new TokenizerError(`chat template: ${String(message)}`);
      },
      strftime_now: (format: unknown) => strftime(date, String(format)),
      ...this.tokenVariables,
      ...options.variables,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      // transformers passes tools=None and documents=None: defined, and none.
      tools: null,
      documents: null,
    };
    for (const [name, value] of Object.entries(variables)) env.set(name, value);
    try {
      return new Interpreter(env).run(this.template.parsed).value as string;
    } catch (error) {
      if (error instanceof TokenizerError) throw error;
      throw new TokenizerError(`chat template: ${(error as Error).message}`);
    }
  }
}
