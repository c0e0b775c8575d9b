export { makeConfig, validateConfig, configFromJson, configToJson, schemeOf, layerDepth, headDim, CONFIG_DEFAULTS } from './config.js';
export type { LlamaConfig, DeepenConfigBlock } from './config.js';
export { PRESETS, presetConfig, countParameters, trainingFlopsPerToken, forwardFlopsPerToken } from './presets.js';
export type { PresetShape, ParameterCount } from './presets.js';
export { LlamaModel, modelTensorShapes, blockTensorShapes, tokenCrossEntropy } from './model.js';
export type { ForwardOptions, ForwardResult, HiddenStates, LossOptions } from './model.js';
export { KVCache } from './kv-cache.js';
export { generate, sampleToken } from './generate.js';
export type { GenerateOptions, GenerateResult } from './generate.js';
export { ropeTables, rotateHalf, applyRope } from './rope.js';
export { EMBED, FINAL_NORM, LM_HEAD, BLOCK, layerPrefix, isLinear } from './names.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  readCheckpointConfig,
  layerDepths,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from './checkpoint.js';
export type { SaveOptions } from './checkpoint.js';
export { parseSafetensors, serializeSafetensors, tensorToFloat32, encodeFloat32, SafetensorsError, DTYPE_BYTES } from './safetensors.js';
export type { SafetensorsDtype, SafetensorsFile, SafetensorsTensor, StorageDtype, TensorToWrite } from './safetensors.js';
