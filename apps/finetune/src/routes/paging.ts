import { badRequest } from '../errors.js';
import { UnknownCursorError, type Page } from '../store/types.js';

/** Runs a page query; a cursor that names nothing visible is a 400 on `after`. */
export async function paged<T>(query: () => Promise<Page<T>>): Promise<Page<T>> {
  try {
    return await query();
  } catch (error) {
    if (error instanceof UnknownCursorError) throw badRequest(`Query parameter 'after': no item '${error.cursor}' in this list.`, 'invalid_value', 'after');
    throw error;
  }
}
