import { createReadStream, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { ServiceContext } from '../context.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { ID_PREFIX, isId, newId, nowSeconds } from '../ids.js';
import { defineRoute, HANDLED, type Route } from '../http/routes.js';
import { FileDeleted, FileList, FileObject, FilesQuery, UploadQuery } from '../schemas.js';
import type { FileRecord } from '../store/types.js';
import { TrainingFileError, validateTrainingFile } from '../training-file.js';
import { receiveUpload } from '../uploads.js';
import { fileView, listView } from '../views.js';
import { paged } from './paging.js';

/** A file of this tenant, or the same 404 whether it is missing, malformed or someone else's. */
export async function ownFile(ctx: ServiceContext, tenant: string, id: string): Promise<FileRecord> {
  const file = isId(ID_PREFIX.file, id) ? await ctx.store.getFile(tenant, id) : null;
  if (!file) throw notFound('file', id, 'file_not_found', 'file_id');
  return file;
}

export function fileRoutes(ctx: ServiceContext): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/v1/files',
      operationId: 'uploadFile',
      tag: 'Files',
      summary: 'Upload a JSONL training file',
      description:
        'multipart/form-data with fields `purpose` (fine-tune) and `file`, or the raw JSONL as the body (Content-Type: application/jsonl) with `purpose` and `filename` in the query. ' +
        'Every line must be {"prompt", "completion"} or {"messages": [{"role", "content"}, ...]} (one format per file); the first bad line is named in the error. ' +
        'Stored content-addressed: the same bytes are kept once.',
      query: UploadQuery,
      upload: true,
      response: FileObject,
      errors: [400, 413, 415],
      async handle({ req, query, tenant }) {
        const upload = await receiveUpload(req, { tempPath: ctx.blobs.tempPath(), maxBytes: ctx.maxUploadBytes, rawFilename: query.filename, rawPurpose: query.purpose });
        try {
          if (upload.purpose === undefined) throw badRequest("Missing required parameter 'purpose' (fine-tune).", 'missing_required_parameter', 'purpose');
          if (upload.purpose !== 'fine-tune') throw badRequest(`Invalid value for 'purpose': expected "fine-tune", got '${upload.purpose}'.`, 'invalid_value', 'purpose');
          let facts;
          try {
            facts = await validateTrainingFile(upload.tempPath);
          } catch (error) {
            if (error instanceof TrainingFileError) throw badRequest(`Invalid fine-tuning file: ${error.message}.`, 'invalid_file_format', 'file');
            throw error;
          }
          ctx.blobs.adopt(upload.tempPath, upload.sha256);
          const file: FileRecord = { id: newId(ID_PREFIX.file), tenant, filename: upload.filename, purpose: 'fine-tune', bytes: upload.bytes, sha256: upload.sha256, ...facts, createdAt: nowSeconds() };
          await ctx.store.insertFile(file);
          return fileView(file);
        } finally {
          rmSync(upload.tempPath, { force: true });
        }
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/files',
      operationId: 'listFiles',
      tag: 'Files',
      summary: "List the tenant's files, newest first",
      query: FilesQuery,
      response: FileList,
      errors: [400],
      async handle({ query, tenant }) {
        return listView(await paged(() => ctx.store.listFiles(tenant, { limit: query.limit, ...(query.after ? { after: query.after } : {}), ...(query.purpose ? { purpose: query.purpose } : {}) })), fileView);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/files/{file_id}',
      operationId: 'retrieveFile',
      tag: 'Files',
      summary: 'Retrieve a file',
      response: FileObject,
      errors: [404],
      async handle({ params, tenant }) {
        return fileView(await ownFile(ctx, tenant, params.file_id as string));
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/files/{file_id}/content',
      operationId: 'downloadFile',
      tag: 'Files',
      summary: "A file's content as uploaded",
      response: { contentType: 'application/jsonl', description: 'The JSONL bytes.' },
      errors: [404],
      async handle({ params, tenant, res }) {
        const file = await ownFile(ctx, tenant, params.file_id as string);
        // An ASCII name for every client, and the exact one (RFC 6266) for those that read it.
        const ascii = file.filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
        res.writeHead(200, {
          'content-type': 'application/jsonl; charset=utf-8',
          'content-length': file.bytes,
          'content-disposition': `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(file.filename)}`,
        });
        await pipeline(createReadStream(ctx.blobs.pathOf(file.sha256)), res);
        return HANDLED;
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/v1/files/{file_id}',
      operationId: 'deleteFile',
      tag: 'Files',
      summary: 'Delete a file',
      description: 'A file that a validating, queued or running job uses cannot be deleted (409).',
      response: FileDeleted,
      errors: [404, 409],
      async handle({ params, tenant }) {
        const file = await ownFile(ctx, tenant, params.file_id as string);
        const users = await ctx.store.activeJobsUsingFile(tenant, file.id);
        if (users > 0) throw conflict(`File ${file.id} is used by ${users} job${users === 1 ? '' : 's'} that may still run; cancel ${users === 1 ? 'it' : 'them'} or wait.`, 'file_in_use', 'file_id');
        await ctx.store.deleteFile(tenant, file.id);
        if (!(await ctx.store.blobReferenced(file.sha256))) ctx.blobs.remove(file.sha256);
        return { id: file.id, object: 'file' as const, deleted: true as const };
      },
    }),
  ];
}
