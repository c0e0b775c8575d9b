// Loading a tokenizer folder as transformers does (tokenizer_config.json, special_tokens_map.json,
// chat_template.jinja, config.json's model_type), framing with special tokens, and the errors.
// Synthetic folders around a small trained tokenizer; the post-processor framings are checked
// against the Rust library.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rust from 'tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { stateOfTheUnion, Tokenizer, TokenizerError, trainByteLevelBpe, type TokenizerJson } from '../src/index.js';

let trained: TokenizerJson;
beforeAll(() => {
  trained = trainByteLevelBpe(stateOfTheUnion().train.slice(0, 5).map((d) => d.text), { vocabSize: 600, specialTokens: ['<unk>', '<s>', '</s>', '<pad>', '<|im_start|>', '<|im_end|>'] });
});

/** A folder with the given files (objects are written as JSON). */
function folder(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'deepen-tokdir-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

describe('Tokenizer.fromDir', () => {
  it('without tokenizer_config.json behaves as fromFile: special tokens guessed by name, no framing, no template', () => {
    const dir = folder({ 'tokenizer.json': trained });
    const tokenizer = Tokenizer.fromDir(dir);
    const file = Tokenizer.fromFile(join(dir, 'tokenizer.json'));
    expect(tokenizer.special).toEqual({ bos: 1, eos: 2, pad: 3, unk: 0 });
    expect(tokenizer.special).toEqual(file.special);
    expect(tokenizer.fingerprint).toBe(file.fingerprint);
    expect(tokenizer.chatTemplate).toBeNull();
    expect(tokenizer.config).toBeNull();
    // The trained tokenizer's post_processor is ByteLevel: nothing is added.
    expect(tokenizer.framing).toEqual({ prefix: [], suffix: [], rule: 'post_processor' });
    expect([tokenizer.addsBos, tokenizer.addsEos]).toEqual([false, false]);
    expect(tokenizer.encode('hello there', { addSpecialTokens: true })).toEqual(tokenizer.encode('hello there'));
    expect(Object.keys(tokenizer.files())).toEqual(['tokenizer.json']);
  });

  it('honours the special tokens tokenizer_config.json names (strings, AddedToken objects, null), guessing only the ones it does not name', () => {
    const dir = folder({
      'tokenizer.json': trained,
      'tokenizer_config.json': { bos_token: { __type: 'AddedToken', content: '<|im_start|>', normalized: false }, eos_token: '<|im_end|>', pad_token: null, additional_special_tokens: ['<s>', { content: '</s>' }] },
    });
    const tokenizer = Tokenizer.fromDir(dir);
    expect(tokenizer.specialTokens).toEqual({ bos: '<|im_start|>', eos: '<|im_end|>', pad: null, unk: '<unk>' });
    expect(tokenizer.special).toEqual({ bos: 4, eos: 5, pad: null, unk: 0 });
    expect(tokenizer.chatTemplateTokens).toEqual({ bos_token: '<|im_start|>', eos_token: '<|im_end|>', unk_token: '<unk>', additional_special_tokens: ['<s>', '</s>'] });
    // tokenizer_config.json does not change the ids of plain text, so token caches stay valid.
    expect(tokenizer.fingerprint).toBe(Tokenizer.fromJSON(trained).fingerprint);
  });

  it('merges special_tokens_map.json only into configs without added_tokens_decoder, as transformers does', () => {
    const map = { eos_token: '</s>', pad_token: { content: '<pad>' } };
    const legacy = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { eos_token: '<|im_end|>' }, 'special_tokens_map.json': map }));
    expect(legacy.specialTokens).toMatchObject({ eos: '</s>', pad: '<pad>' });
    expect(Object.keys(legacy.files()).sort()).toEqual(['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const modern = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { eos_token: '<|im_end|>', added_tokens_decoder: {} }, 'special_tokens_map.json': map }));
    expect(modern.specialTokens).toMatchObject({ eos: '<|im_end|>', pad: '<pad>' }); // pad guessed, not from the map
    expect(Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'special_tokens_map.json': { bos_token: '<|im_start|>' } })).special.bos).toBe(4);
  });

  it('picks the chat template: the config string, the "default" of a list, chat_template.jinja over both', () => {
    const single = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { chat_template: '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}' } }));
    expect(single.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<s>hi');
    const listed = Tokenizer.fromDir(
      folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { chat_template: [{ name: 'tool_use', template: 'tools' }, { name: 'default', template: 'default:{{ messages | length }}' }] } }),
    );
    expect(listed.chatTemplate).toBe('default:{{ messages | length }}');
    expect(listed.applyChatTemplate([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }])).toBe('default:2');
    const jinja = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { chat_template: 'config' }, 'chat_template.jinja': 'file {{ eos_token }}\n' }));
    expect(jinja.applyChatTemplate([])).toBe('file </s>');
    expect(jinja.files()['chat_template.jinja']).toBe('file {{ eos_token }}\n');
  });

  it('frames [bos] text [eos] from add_bos_token / add_eos_token for the classes that rebuild the post-processor', () => {
    const ids = Tokenizer.fromJSON(trained).encode('the people');
    const llama = (config: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { tokenizer_class: 'LlamaTokenizerFast', ...config }, ...extra }));
    // LlamaTokenizerFast's defaults: add_bos_token true, add_eos_token false.
    expect(llama({}).encode('the people', { addSpecialTokens: true })).toEqual([1, ...ids]);
    expect(llama({ add_eos_token: true }).encode('the people', { addSpecialTokens: true })).toEqual([1, ...ids, 2]);
    const neither = llama({ tokenizer_class: 'LlamaTokenizer', add_bos_token: false });
    expect(neither.encode('the people', { addSpecialTokens: true })).toEqual(ids);
    expect([neither.addsBos, neither.addsEos]).toEqual([false, false]);
    const both = llama({ add_eos_token: true, bos_token: '<|im_start|>', eos_token: '<|im_end|>' });
    expect(both.encode('', { addSpecialTokens: true })).toEqual([4, 5]);
    expect([both.addsBos, both.addsEos, both.framing.rule]).toEqual([true, true, 'add_bos_token']);
    // Other classes ignore the flags: tokenizer.json's post_processor decides (ByteLevel: nothing).
    const qwen = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { tokenizer_class: 'Qwen2TokenizerFast', add_bos_token: true, add_eos_token: true } }));
    expect(qwen.encode('the people', { addSpecialTokens: true })).toEqual(ids);
    // Without a tokenizer_class, config.json's model_type picks the class: deepen's own
    // checkpoints (model_type llama) get LlamaTokenizerFast's BOS, as AutoTokenizer gives them.
    const checkpoint = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'config.json': { model_type: 'llama' } }));
    expect(checkpoint.framing).toEqual({ prefix: [1], suffix: [], rule: 'add_bos_token' });
    expect(Object.keys(checkpoint.files())).toEqual(['tokenizer.json']); // config.json is the model's
    const noBos = trainByteLevelBpe(['abc abc'], { vocabSize: 260, specialTokens: ['</s>'] });
    expect(Tokenizer.fromDir(folder({ 'tokenizer.json': noBos, 'config.json': { model_type: 'llama' } })).framing.prefix).toEqual([]);
  });

  it("frames as the Rust library's post_processor does: TemplateProcessing, BertProcessing, RobertaProcessing, Sequence", async () => {
    const template = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { SpecialToken: { id: 'pair', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] }, pair: { id: 'pair', ids: [4, 5], tokens: ['<|im_start|>', '<|im_end|>'] }, '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
    };
    const processors = [
      template,
      { type: 'BertProcessing', sep: ['</s>', 2], cls: ['<s>', 1] },
      { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 1], trim_offsets: false, add_prefix_space: false },
      { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }, template] },
    ];
    for (const post_processor of processors) {
      const dir = folder({ 'tokenizer.json': { ...trained, post_processor } });
      const ours = Tokenizer.fromDir(dir);
      const reference = rust.Tokenizer.fromFile(join(dir, 'tokenizer.json'));
      for (const text of ['', 'the people', ' of the United States\n']) {
        const expected = (await reference.encode(text, null, { addSpecialTokens: true })).getIds();
        expect(ours.encode(text, { addSpecialTokens: true }), `${post_processor.type} ${JSON.stringify(text)}`).toEqual(expected);
      }
    }
  });

  it('reports missing folders and files, and broken settings, by name', () => {
    const root = mkdtempSync(join(tmpdir(), 'deepen-tokdir-'));
    expect(() => Tokenizer.fromDir(join(root, 'absent'))).toThrow(new TokenizerError(`${join(root, 'absent')}: tokenizer folder not found`));
    mkdirSync(join(root, 'empty'));
    expect(() => Tokenizer.fromDir(join(root, 'empty'))).toThrow(new TokenizerError(`${join(root, 'empty')}: no tokenizer.json`));
    writeFileSync(join(root, 'file'), '');
    expect(() => Tokenizer.fromDir(join(root, 'file'))).toThrow(/file: not a folder/);
    const bad = (config: unknown) => () => Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': config }));
    expect(bad('{"bos_token": ')).toThrow(/tokenizer_config\.json: not valid JSON/);
    expect(bad({ bos_token: '<nope>' })).toThrow(/tokenizer_config\.json: bos_token "<nope>" is not in the vocabulary/);
    expect(bad({ eos_token: 7 })).toThrow(/tokenizer_config\.json: eos_token must be a string, an AddedToken object/);
    expect(bad({ tokenizer_class: 'LlamaTokenizerFast', add_bos_token: 'yes' })).toThrow(/tokenizer_config\.json: add_bos_token must be true or false/);
    expect(bad({ tokenizer_class: 'LlamaTokenizerFast', add_bos_token: true, bos_token: null })).toThrow(/add_bos_token is true but the tokenizer has no bos_token/);
    expect(bad({ chat_template: [{ name: 'tool_use', template: 'x' }] })).toThrow(/chat_template lists "tool_use" but no "default" template/);
    expect(bad({ chat_template: 42 })).toThrow(/chat_template must be a string or a list/);
    const template = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { chat_template: "{{ raise_exception('only user messages') }}" } }));
    expect(() => template.applyChatTemplate([])).toThrow(new TokenizerError('chat template: only user messages'));
    const syntax = Tokenizer.fromDir(folder({ 'tokenizer.json': trained, 'tokenizer_config.json': { chat_template: '{% for %}' } }));
    expect(() => syntax.applyChatTemplate([])).toThrow(/chat template does not parse/);
  });

  it('a model type tokenizers.js does not implement fails at load, naming the type', () => {
    const foo = { ...trained, model: { ...trained.model, type: 'Foo' } };
    expect(() => Tokenizer.fromJSON(foo, 'foo/tokenizer.json')).toThrow(new TokenizerError('foo/tokenizer.json: tokenizer model type "Foo" is not implemented by tokenizers.js (it implements BPE, Unigram, WordPiece)'));
    const dir = folder({ 'tokenizer.json': foo });
    expect(() => Tokenizer.fromDir(dir)).toThrow(/tokenizer\.json: tokenizer model type "Foo" is not implemented by tokenizers\.js/);
    // WordLevel is a real model type (the Rust library has it) that tokenizers.js lacks.
    const wordLevel = { ...trained, pre_tokenizer: { type: 'Whitespace' }, decoder: null, model: { type: 'WordLevel', vocab: { '<unk>': 0, hello: 1 }, unk_token: '<unk>' } };
    expect(() => Tokenizer.fromJSON(wordLevel)).toThrow(/tokenizer model type "WordLevel" is not implemented by tokenizers\.js/);
    const untyped = { ...trained, model: { ...trained.model, type: undefined } };
    expect(() => Tokenizer.fromJSON(untyped)).toThrow(/tokenizer model type null is not implemented/);
  });

  it('a post_processor deepen cannot read only fails encode with special tokens', () => {
    const tokenizer = Tokenizer.fromDir(folder({ 'tokenizer.json': { ...trained, post_processor: { type: 'Mystery' } } }));
    expect(tokenizer.engine).toBe('byte-level-bpe');
    expect(tokenizer.encode('the people')).toEqual(Tokenizer.fromJSON(trained).encode('the people'));
    expect(() => tokenizer.encode('the people', { addSpecialTokens: true })).toThrow(/tokenizer\.json: post_processor type "Mystery" is not supported for add_special_tokens/);
    expect(() => tokenizer.addsBos).toThrow(TokenizerError);
    // In a Sequence the Rust library hands each piece of one processor's output to the next as
    // a sequence of its own (TemplateProcessing then BertProcessing puts a sep after every
    // template piece), so with two processors adding tokens deepen refuses rather than guess.
    const bert = { type: 'BertProcessing', sep: ['<pad>', 3], cls: ['<unk>', 0] };
    const twice = Tokenizer.fromJSON({ ...trained, post_processor: { type: 'Sequence', processors: [{ ...bert, sep: ['</s>', 2], cls: ['<s>', 1] }, bert] } });
    expect(() => twice.encode('x', { addSpecialTokens: true })).toThrow(/Sequence with more than one processor adding special tokens is not supported/);
  });

  it('decode: no ids is the empty text, on both engines; ids outside the vocabulary are errors', () => {
    for (const engine of ['auto', 'tokenizers.js'] as const) {
      const tokenizer = Tokenizer.fromJSON(trained, 'trained', { engine });
      expect(tokenizer.decode([]), engine).toBe('');
      expect(tokenizer.decode([1, 2], { skipSpecialTokens: true }), engine).toBe('');
      expect(() => tokenizer.decode([600]), engine).toThrow(/decode: 600 is not a token id of this tokenizer \(vocabulary of 600\)/);
      expect(() => tokenizer.decode([-1]), engine).toThrow(TokenizerError);
      expect(() => tokenizer.decode([0.5]), engine).toThrow(TokenizerError);
    }
  });
});
