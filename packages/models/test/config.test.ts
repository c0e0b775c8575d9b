import { describe, expect, it } from 'vitest';
import { configFromJson, configToJson, forwardFlopsPerToken, makeConfig, PRESETS, presetConfig, trainingFlopsPerToken, countParameters } from '../src/index.js';

const plain = (config: ReturnType<typeof presetConfig>) =>
  countParameters(config, { normsPerBlock: new Array(config.num_hidden_layers).fill(2), gateParams: [] });

describe('LlamaConfig', () => {
  it('fills Hugging Face defaults and the pre scheme', () => {
    const c = makeConfig({ vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4 });
    expect(c).toMatchObject({ num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, deepen: { norm_scheme: 'pre' } });
  });

  it('lists every invalid key in one error', () => {
    expect(() =>
      makeConfig({ vocab_size: 100, hidden_size: 30, intermediate_size: 0, num_hidden_layers: 2, num_attention_heads: 4, eos_token_id: 100 }),
    ).toThrow(
      'invalid config: intermediate_size must be a positive integer, got 0; hidden_size (30) must be divisible by num_attention_heads (4); eos_token_id must be null or an id in [0, vocab_size), got 100',
    );
    expect(() => makeConfig({ vocab_size: 10, hidden_size: 64, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 3 })).toThrow(
      /num_attention_heads \(4\) must be divisible by num_key_value_heads \(3\)/,
    );
    expect(() => makeConfig({ vocab_size: 10, hidden_size: 12, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 4 })).toThrow(
      /head dimension .* = 3 must be even/,
    );
    expect(() => makeConfig({ vocab_size: 10, hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 4, deepen: { norm_scheme: 'lnss' } })).toThrow(
      /deepen.norm_scheme: unknown normalization scheme 'lnss'; known: pre, post/,
    );
    expect(() => makeConfig({ vocab_size: 10, hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 4, deepen: { norm_scheme: 'lns', layer_depths: [1] } })).toThrow(
      /deepen.layer_depths must list one positive depth per layer \(2\)/,
    );
  });

  it('round trips through config.json and reads plain Hugging Face configs as Pre-LN', () => {
    const c = presetConfig('tiny', { deepen: { norm_scheme: 'lns+scaled' } });
    const json = JSON.parse(JSON.stringify(configToJson(c)));
    expect(json).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_act: 'silu', head_dim: 8 });
    expect(configFromJson(json)).toEqual(c);
    const { deepen: _d, ...hf } = json;
    expect(configFromJson(hf).deepen).toEqual({ norm_scheme: 'pre' });
    expect(configFromJson({ ...hf, eos_token_id: [2, 5] }).eos_token_id).toBe(2);
  });

  it('refuses Hugging Face features it does not implement, by name', () => {
    const hf = configToJson(presetConfig('tiny'));
    expect(() => configFromJson({ ...hf, model_type: 'gemma', architectures: ['GemmaForCausalLM'] }, 'x/config.json')).toThrow(
      "x/config.json: model_type 'gemma' is not implemented (Gemma's (1 + weight) norms, GeGLU MLP and scaled embeddings); deepen implements llama, mistral, qwen2, qwen3",
    );
    expect(() => configFromJson({ ...hf, model_type: 'qwen3_moe' })).toThrow(/'qwen3_moe' is not implemented \(a mixture-of-experts model \(MoE\)\)/);
    expect(() => configFromJson({ ...hf, model_type: 'mistral' }, 'x/config.json')).toThrow(`x/config.json: architectures ["LlamaForCausalLM"] is not implemented; a 'mistral' causal LM is ["MistralForCausalLM"]`);
    expect(() => configFromJson({ ...hf, rope_scaling: { rope_type: 'longrope', factor: 2 } })).toThrow(/rope type 'longrope' is not implemented \(deepen implements default, linear, dynamic, llama3, yarn\)/);
    expect(() => configFromJson({ ...hf, rope_scaling: { rope_type: 'yarn', factor: 4, mscale: 1 } })).toThrow(/rope type 'yarn' does not take mscale/);
    expect(() => configFromJson({ ...hf, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(/needs low_freq_factor, high_freq_factor, original_max_position_embeddings/);
    expect(() => configFromJson({ ...hf, partial_rotary_factor: 0.5 })).toThrow(/'partial_rotary_factor' is not a 'llama' key deepen knows; it may change the computation/);
    expect(() => configFromJson({ ...hf, sliding_window: 4 })).toThrow(/'sliding_window' is not a 'llama' key/);
    expect(() => configFromJson({ ...hf, quantization_config: { quant_method: 'gptq' } })).toThrow(/quantization_config/);
    expect(() => configFromJson({ ...hf, hidden_act: 'gelu' })).toThrow(/hidden_act 'gelu' is not implemented/);
    expect(() => configFromJson([])).toThrow(/expected a JSON object/);
  });
});

describe('presets', () => {
  it('has the paper shapes', () => {
    expect(PRESETS['9m']).toMatchObject({ num_hidden_layers: 4, hidden_size: 128, num_attention_heads: 4, intermediate_size: 352 });
    expect(PRESETS['130m']).toMatchObject({ num_hidden_layers: 12, hidden_size: 768, num_attention_heads: 12, intermediate_size: 2048 });
    expect(PRESETS['1b']).toMatchObject({ num_hidden_layers: 24, hidden_size: 2048, num_attention_heads: 32, intermediate_size: 5461 });
    expect(() => presetConfig('7x')).toThrow(/unknown preset '7x'; known presets: tiny, small, 9m/);
  });

  it('counts parameters (hand-checked for 9m and 130m)', () => {
    // 9m: embed 32000*128 + 4 blocks * (4*128^2 + 3*128*352 + 2*128) + 128 + head 32000*128
    expect(plain(presetConfig('9m')).total).toBe(8_995_968);
    expect(plain(presetConfig('9m')).embedding).toBe(4_096_000);
    // 130m: 24,576,000 + 12 * 7,079,424 + 768 + 24,576,000
    expect(plain(presetConfig('130m')).total).toBe(134_105_856);
    expect(plain(presetConfig('9m', { tie_word_embeddings: true })).total).toBe(4_899_968);
  });

  it('counts training FLOPs per token (hand-checked for 9m at 256 tokens)', () => {
    // 2 * (4 * (4*128^2 + 3*128*352) + 32000*128) + 4 layers * 4 * 256 * 128
    expect(forwardFlopsPerToken(presetConfig('9m'), 256)).toBe(10_321_920);
    expect(trainingFlopsPerToken(presetConfig('9m'), 256)).toBe(30_965_760);
  });
});
