import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CorpusError, loadCorpus, mobyDick, stateOfTheUnion } from '../src/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-corpus-'));

describe('built-in corpora', () => {
  it('splits the State of the Union by year: before 2001 trains, 2001 on validates', () => {
    const sotu = stateOfTheUnion();
    expect(sotu.train.length + sotu.validation.length).toBe(233);
    expect(sotu.train.every((d) => d.year < 2001)).toBe(true);
    expect(sotu.validation.every((d) => d.year >= 2001)).toBe(true);
    expect(sotu.train[0]).toMatchObject({ year: 1790, president: 'George Washington' });
    expect(sotu.train[0]!.text).toMatch(/^Fellow-Citizens of the Senate and House of Representatives/);
    const words = [...sotu.train, ...sotu.validation].reduce((a, d) => a + d.text.split(/\s+/).length, 0);
    expect(words).toBeGreaterThan(1_500_000);
    expect(stateOfTheUnion().fingerprint).toBe(sotu.fingerprint);
  });

  it('has Moby-Dick in chapter order', () => {
    const book = mobyDick();
    expect(book.length).toBeGreaterThan(135);
    expect(book[0]!.id).toBe('moby-dick/etymology');
    expect(book.find((d) => d.id === 'moby-dick/chapter_1')!.text).toMatch(/Call me Ishmael/);
    expect(book.findIndex((d) => d.id === 'moby-dick/chapter_2')).toBe(book.findIndex((d) => d.id === 'moby-dick/chapter_1') + 1);
  });
});

describe('user corpora', () => {
  function sampleDir() {
    const dir = tmp();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.txt'), 'second file\n');
    writeFileSync(join(dir, 'a.txt'), 'first file\n');
    writeFileSync(join(dir, 'sub', 'c.jsonl'), '{"text":"json one"}\n\n{"text":"json two","meta":1}\n');
    writeFileSync(join(dir, 'd.jsonl.gz'), gzipSync('{"text":"zipped"}\n'));
    writeFileSync(join(dir, 'notes.md'), 'ignored');
    return dir;
  }

  it('reads txt, jsonl and jsonl.gz in a deterministic order', () => {
    const dir = sampleDir();
    const corpus = loadCorpus(dir, { validationFraction: 0 });
    expect(corpus.train.map((d) => d.id)).toEqual(['a.txt', 'b.txt', 'd.jsonl.gz:1', 'sub/c.jsonl:1', 'sub/c.jsonl:3']);
    expect(corpus.train.map((d) => d.text)).toEqual(['first file\n', 'second file\n', 'zipped', 'json one', 'json two']);
  });

  it('splits train/validation with a seed, reproducibly', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'docs.jsonl'), Array.from({ length: 100 }, (_, i) => JSON.stringify({ body: `doc ${i}` })).join('\n'));
    const a = loadCorpus(dir, { textField: 'body', validationFraction: 0.1, seed: 1 });
    const b = loadCorpus(dir, { textField: 'body', validationFraction: 0.1, seed: 1 });
    const c = loadCorpus(dir, { textField: 'body', validationFraction: 0.1, seed: 2 });
    expect(a.validation).toHaveLength(10);
    expect(a.train).toHaveLength(90);
    expect(b.validation.map((d) => d.id)).toEqual(a.validation.map((d) => d.id));
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(c.validation.map((d) => d.id)).not.toEqual(a.validation.map((d) => d.id));
    expect(c.fingerprint).not.toBe(a.fingerprint);
    expect(a.train.map((d) => d.id)).toEqual([...a.train.map((d) => d.id)].sort((x, y) => Number(x.split(':')[1]) - Number(y.split(':')[1])));
  });

  it('splits txt files on blank lines when asked', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'p.txt'), 'one\ntwo\n\n\nthree\r\n\r\nfour');
    expect(loadCorpus(join(dir, 'p.txt'), { txtDocuments: 'paragraph', validationFraction: 0 }).train.map((d) => d.text)).toEqual(['one\ntwo', 'three', 'four']);
  });

  it('names the file and line of bad input', () => {
    const dir = tmp();
    expect(() => loadCorpus(join(dir, 'missing'))).toThrow(`${join(dir, 'missing')}: no such file or directory`);
    writeFileSync(join(dir, 'bad.jsonl'), '{"text":"ok"}\n{"text": broken}\n');
    expect(() => loadCorpus(join(dir, 'bad.jsonl'))).toThrow(new RegExp(`${join(dir, 'bad.jsonl')}:2: not valid JSON`));
    writeFileSync(join(dir, 'bad.jsonl'), '{"text":"ok"}\n{"content":"x"}\n');
    expect(() => loadCorpus(join(dir, 'bad.jsonl'))).toThrow(`${join(dir, 'bad.jsonl')}:2: no string field 'text' (fields: content)`);
    writeFileSync(join(dir, 'bad.txt'), Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x63]));
    expect(() => loadCorpus(join(dir, 'bad.txt'))).toThrow(`${join(dir, 'bad.txt')}:2: invalid UTF-8 (byte 3)`);
    writeFileSync(join(dir, 'empty.txt'), '  \n');
    expect(() => loadCorpus(join(dir, 'empty.txt'))).toThrow(/the corpus is empty/);
    writeFileSync(join(dir, 'x.csv'), 'a,b');
    expect(() => loadCorpus(join(dir, 'x.csv'))).toThrow(/unsupported file type/);
    mkdirSync(join(dir, 'nothing'));
    expect(() => loadCorpus(join(dir, 'nothing'))).toThrow(/no .txt \/ .jsonl \/ .jsonl.gz files found/);
    writeFileSync(join(dir, 'z.jsonl.gz'), 'not gzip');
    expect(() => loadCorpus(join(dir, 'z.jsonl.gz'))).toThrow(/not a valid gzip file/);
    expect(() => loadCorpus(join(dir, 'p.txt'), { validationFraction: 1 })).toThrow(CorpusError);
  });
});
