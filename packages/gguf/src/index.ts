// @deepen/gguf: deepen models as llama.cpp's GGUF files and back.
export { exportGguf, GGUF_DTYPES } from './export.js';
export type { ExportGgufOptions, ExportGgufResult, GgufDtype } from './export.js';
export { importGguf, readGgufModel, modelFromGguf } from './import.js';
export type { GgufModel } from './import.js';
export { readGguf, writeGguf, readTensorBytes, metaValue, GgufError, GGML_TYPE_NAMES, TENSOR_TYPES, FILE_TYPES, u32, i32, f32, bool, str, arr } from './format.js';
export type { GgufFile, GgufTensorInfo, GgufTensorToWrite, GgufValue, TensorTypeName } from './format.js';
export { encodeTensor, decodeTensor, quantizeQ8_0, dequantizeQ8_0 } from './quant.js';
export { tokenizerMetadata, tokenizerFromGguf, TOKEN_TYPE } from './tokenizer.js';
export type { ImportedTokenizer } from './tokenizer.js';
export { ggufName, hfName, permuteRotaryRows, ARCHITECTURES } from './names.js';

/** Whether a path names a GGUF file (by its extension). */
export const isGgufPath = (path: string): boolean => /\.gguf$/i.test(path);
