import { createHash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { basename } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { ApiError, badRequest, tooLarge } from './errors.js';

export interface ReceivedUpload {
  tempPath: string;
  sha256: string;
  bytes: number;
  filename: string;
  purpose: string | undefined;
}

/** Content types accepted as a raw JSONL body (purpose and filename then come from the query). */
const RAW_TYPES = new Set(['application/jsonl', 'application/x-ndjson', 'application/jsonlines', 'application/x-jsonlines', 'application/octet-stream', 'text/plain']);

/** A filename as recorded: its last path component, printable, at most 255 characters. */
export function cleanFilename(name: string | undefined, fallback: string): string {
  // eslint-disable-next-line no-control-regex
  const base = basename((name ?? '').replace(/\\/g, '/')).replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return (base === '' || base === '.' || base === '..' ? fallback : base).slice(0, 255);
}

const fileTooLarge = (maxBytes: number) => tooLarge(`The file is larger than the ${maxBytes}-byte upload limit.`, 'file_too_large', 'file');

/** Streams `source` (the request or a part of it) to `tempPath`, hashing and counting, failing past `maxBytes`. */
async function store(source: Readable, req: IncomingMessage, tempPath: string, maxBytes: number): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) return done(fileTooLarge(maxBytes));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const out = createWriteStream(tempPath);
  // The source is piped rather than part of the pipeline, so that a failure leaves the request
  // itself alone: the service still reads its rest and answers on the same connection.
  source.pipe(meter);
  // A client that goes away mid-upload would otherwise leave the pipeline waiting forever.
  const interrupted = () => {
    if (!req.complete) meter.destroy(badRequest('The upload was interrupted before the whole file arrived.', 'upload_interrupted', 'file'));
  };
  req.once('close', interrupted);
  try {
    await pipeline(meter, out);
  } catch (error) {
    source.unpipe(meter);
    // The file may still be opening: remove it only once the stream has let go of it.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    rmSync(tempPath, { force: true });
    throw error;
  } finally {
    req.off('close', interrupted);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Receives an upload: multipart/form-data with `purpose` and `file`, or a raw JSONL body.
 * Nothing is kept unless the whole file arrived within the limit.
 */
export async function receiveUpload(req: IncomingMessage, options: { tempPath: string; maxBytes: number; rawFilename: string | undefined; rawPurpose: string | undefined }): Promise<ReceivedUpload> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  // Multipart framing adds a little; the file itself is held to the limit below.
  const allowance = type === 'multipart/form-data' ? 64 * 1024 : 0;
  if (Number(req.headers['content-length'] ?? 0) > options.maxBytes + allowance) throw fileTooLarge(options.maxBytes);
  if (RAW_TYPES.has(type)) {
    const { sha256, bytes } = await store(req, req, options.tempPath, options.maxBytes);
    return { tempPath: options.tempPath, sha256, bytes, filename: cleanFilename(options.rawFilename, 'upload.jsonl'), purpose: options.rawPurpose };
  }
  if (type !== 'multipart/form-data') {
    throw new ApiError(415, `Upload a file as multipart/form-data (fields purpose and file) or as a raw JSONL body (Content-Type: application/jsonl), got ${type === '' ? 'no Content-Type' : `'${type}'`}.`, 'invalid_request_error', 'unsupported_media_type');
  }
  if (options.rawFilename !== undefined || options.rawPurpose !== undefined) {
    throw badRequest('With multipart/form-data, send purpose as a form field, not in the query string.', 'unknown_parameter', options.rawPurpose !== undefined ? 'purpose' : 'filename');
  }
  let parser: busboy.Busboy;
  try {
    // Clients send file names as raw UTF-8 (busboy's default reads them as latin1).
    parser = busboy({ headers: req.headers, defParamCharset: 'utf8', limits: { files: 1, fields: 4, fieldSize: 1024, parts: 5, fileSize: options.maxBytes + 1 } });
  } catch (error) {
    throw badRequest(`Malformed multipart/form-data: ${(error as Error).message}.`, 'invalid_multipart');
  }
  return new Promise<ReceivedUpload>((resolve, reject) => {
    let purpose: string | undefined;
    let stored: Promise<{ sha256: string; bytes: number; filename: string }> | null = null;
    let fileStream: Readable | null = null;
    let failed = false;
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      fileStream?.destroy();
      // A file still being written is removed once it is closed.
      const remove = () => rmSync(options.tempPath, { force: true });
      if (stored) stored.then(remove, remove);
      else remove();
      reject(error);
    };
    parser.on('field', (name, value) => {
      if (name !== 'purpose') return fail(badRequest(`Unknown form field '${name}' (expected purpose and file).`, 'unknown_parameter', name));
      purpose = value;
    });
    parser.on('file', (name, stream, info) => {
      if (failed) return void stream.resume();
      if (name !== 'file') {
        stream.resume();
        return fail(badRequest(`Unknown form field '${name}' (expected purpose and file).`, 'unknown_parameter', name));
      }
      fileStream = stream;
      stream.on('limit', () => fail(fileTooLarge(options.maxBytes)));
      stored = store(stream, req, options.tempPath, options.maxBytes).then((r) => ({ ...r, filename: cleanFilename(info.filename, 'upload.jsonl') }));
      stored.catch(fail);
    });
    for (const limit of ['partsLimit', 'filesLimit', 'fieldsLimit'] as const) {
      parser.on(limit, () => fail(badRequest('Too many form fields: send one purpose field and one file.', 'invalid_multipart')));
    }
    parser.on('error', (error: Error) => fail(badRequest(`Malformed multipart/form-data: ${error.message}.`, 'invalid_multipart')));
    parser.on('close', () => {
      if (failed) return;
      if (!stored) return fail(badRequest("Missing required form field 'file'.", 'missing_required_parameter', 'file'));
      stored.then((r) => {
        if (!failed) resolve({ tempPath: options.tempPath, ...r, purpose });
      }, fail);
    });
    req.pipe(parser);
  });
}
