import { BLOCK, EMBED, FINAL_NORM, LM_HEAD, type FamilyName } from '@deepen/models';

/**
 * Hugging Face tensor names and llama.cpp's (the LLM_TENSOR_* names of llama-arch.cpp), and
 * which llama.cpp architecture each deepen family runs as.
 */

const TOP: Record<string, string> = {
  [EMBED]: 'token_embd.weight',
  [FINAL_NORM]: 'output_norm.weight',
  [LM_HEAD]: 'output.weight',
};

const PER_BLOCK: Record<string, string> = {
  [BLOCK.attnNorm]: 'attn_norm.weight',
  [BLOCK.mlpNorm]: 'ffn_norm.weight',
  [BLOCK.q]: 'attn_q.weight',
  [BLOCK.k]: 'attn_k.weight',
  [BLOCK.v]: 'attn_v.weight',
  [BLOCK.o]: 'attn_output.weight',
  [BLOCK.qBias]: 'attn_q.bias',
  [BLOCK.kBias]: 'attn_k.bias',
  [BLOCK.vBias]: 'attn_v.bias',
  [BLOCK.oBias]: 'attn_output.bias',
  [BLOCK.gate]: 'ffn_gate.weight',
  [BLOCK.up]: 'ffn_up.weight',
  [BLOCK.down]: 'ffn_down.weight',
  [BLOCK.gateBias]: 'ffn_gate.bias',
  [BLOCK.upBias]: 'ffn_up.bias',
  [BLOCK.downBias]: 'ffn_down.bias',
  [BLOCK.qNorm]: 'attn_q_norm.weight',
  [BLOCK.kNorm]: 'attn_k_norm.weight',
};
const PER_BLOCK_BACK = new Map(Object.entries(PER_BLOCK).map(([hf, gguf]) => [gguf, hf]));
const TOP_BACK = new Map(Object.entries(TOP).map(([hf, gguf]) => [gguf, hf]));

/** The llama.cpp name of a Hugging Face tensor name, or null when llama.cpp has none for it. */
export function ggufName(hfName: string): string | null {
  const top = TOP[hfName];
  if (top) return top;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const block = m ? PER_BLOCK[m[2] as string] : undefined;
  return m && block ? `blk.${m[1]}.${block}` : null;
}

/** The Hugging Face name of a llama.cpp tensor name, or null when deepen has none for it. */
export function hfName(ggufTensor: string): string | null {
  const top = TOP_BACK.get(ggufTensor);
  if (top) return top;
  const m = /^blk\.(\d+)\.(.+)$/.exec(ggufTensor);
  const block = m ? PER_BLOCK_BACK.get(m[2] as string) : undefined;
  return m && block ? `model.layers.${m[1]}.${block}` : null;
}

/**
 * llama.cpp's architecture for each family, and whether its rotary pairs neighbouring values
 * (llama.cpp's "normal" rope: q/k rows must be permuted from Hugging Face's rotate_half
 * layout) or halves (NEOX rope, Hugging Face's own layout). Mistral runs as `llama`, as
 * llama.cpp's own converter writes it.
 */
export const ARCHITECTURES: Record<FamilyName, { arch: string; neighbourRope: boolean }> = {
  llama: { arch: 'llama', neighbourRope: true },
  mistral: { arch: 'llama', neighbourRope: true },
  qwen2: { arch: 'qwen2', neighbourRope: false },
  qwen3: { arch: 'qwen3', neighbourRope: false },
};

/** The family an imported architecture becomes. */
export const FAMILY_OF_ARCH: Record<string, { family: FamilyName; neighbourRope: boolean }> = {
  llama: { family: 'llama', neighbourRope: true },
  qwen2: { family: 'qwen2', neighbourRope: false },
  qwen3: { family: 'qwen3', neighbourRope: false },
};

/**
 * Reorders the rows of a q or k projection (weight [heads*headDim, in] or bias [heads*headDim])
 * between Hugging Face's rotate_half layout, where a head's rotary pairs are (i, i + d/2), and
 * llama.cpp's neighbour layout, where they are (2i, 2i + 1). `toNeighbours` false undoes it.
 */
export function permuteRotaryRows(values: Float32Array, heads: number, rowLength: number, toNeighbours: boolean): Float32Array {
  const rows = values.length / rowLength;
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) throw new Error(`cannot permute ${rows} rows into ${heads} heads of even width`);
  const out = new Float32Array(values.length);
  const half = d / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let part = 0; part < 2; part++) {
        const hfRow = h * d + part * half + i;
        const llamaRow = h * d + 2 * i + part;
        const [from, to] = toNeighbours ? [hfRow, llamaRow] : [llamaRow, hfRow];
        out.set(values.subarray(from * rowLength, (from + 1) * rowLength), to * rowLength);
      }
    }
  }
  return out;
}
