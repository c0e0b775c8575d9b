/**
 * Turns the many ways a TensorFlow.js engine fails to load into one line a user can act on.
 * The native engines fail differently depending on what is missing: the npm package, the
 * libtensorflow addon its install step downloads, or the CUDA libraries it links against.
 */
export function explainLoadFailure(packageName: string, error: unknown): string {
  if (error instanceof EngineUnavailableError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | null)?.code;
  const firstLine = message.split('\n')[0]?.trim() ?? '';

  if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(packageName)) {
    return `not installed: the npm package ${packageName} is missing`;
  }
  const cudaLibrary = /(lib(?:cudart|cudnn|cublas|cublasLt|cufft|curand|cusolver|cusparse|nvinfer)[\w.-]*\.so[\w.]*)/.exec(message);
  if (cudaLibrary) {
    return `CUDA libraries missing: ${cudaLibrary[1]} cannot be loaded (tfjs-node-gpu 4.x needs CUDA 11.2 and cuDNN 8.1 on the library path)`;
  }
  if (/tfjs_binding\.node|native addon/i.test(message)) {
    return `native addon missing: ${packageName} is installed but its install step did not build or download libtensorflow (${firstLine})`;
  }
  if (/libtensorflow/i.test(message)) {
    return `libtensorflow cannot be loaded: ${firstLine}`;
  }
  if (/cannot open shared object file|undefined symbol|GLIBC|invalid ELF/i.test(message)) {
    return `native library cannot be loaded: ${firstLine}`;
  }
  return `failed to load: ${firstLine || 'unknown error'}`;
}

/** An engine's loader already knows, in words a user can act on, why the engine cannot start. */
export class EngineUnavailableError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'EngineUnavailableError';
  }
}
