// A varied corpus for comparing tokenizers string by string: prose, code, numbers, whitespace,
// scripts other than Latin, emoji, combining marks, right-to-left text and the literal
// strings of special tokens. Deterministic: the same strings on every run.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mobyDick, stateOfTheUnion } from '../src/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Cuts `text` into consecutive pieces of varying length (so cuts fall mid-word, mid-line, mid-space run). */
function pieces(text: string, budget: number, lengths = [120, 300, 180, 500, 60, 380]): string[] {
  const out: string[] = [];
  let at = 0;
  let used = 0;
  for (let i = 0; at < text.length && used < budget; i++) {
    const piece = text.slice(at, at + (lengths[i % lengths.length] as number));
    out.push(piece);
    at += piece.length;
    used += piece.length;
  }
  return out;
}

const NUMBERS = [
  '0',
  '7',
  '42',
  '123',
  '1234',
  '12345678901234567890',
  '3.14159265358979',
  '-0.5',
  '1e-9',
  '6.022e23',
  '1,234,567.89',
  '1.234.567,89',
  '0x1F 0b1010 0o777',
  '2024-01-02T03:04:05Z',
  '12:30:45.123',
  '+1 (555) 010-9999',
  '50% of 1/3 is 16.67%',
  '$1,000,000 and €2.50 and ¥300',
  'v1.2.3-beta.4+build.5',
  '192.168.0.1:8080',
  'IV, XII, MMXXIV',
  '١٢٣٤٥ ٦٧٨٩',
  '１２３４５',
  '½ ¼ ¾ ² ³ ⁴ ₁ ₂',
  Array.from({ length: 60 }, (_, i) => i * 37).join(' '),
  Array.from({ length: 40 }, (_, i) => (i * 7919) % 1000).join(','),
];

const WHITESPACE = [
  ' ',
  '  ',
  '   ',
  '\t',
  '\t\t',
  '\n',
  '\n\n',
  '\n\n\n',
  '\r\n',
  '\r\n\r\n',
  ' \n',
  '\n ',
  ' \t \n \t ',
  '\t \n\n  \t\n',
  ' '.repeat(17),
  '\t'.repeat(9),
  '\n'.repeat(12),
  'word  two   three    four     five',
  'tab\tseparated\tvalues\there',
  '  leading spaces',
  'trailing spaces   ',
  '\tleading tab',
  'trailing newline\n',
  '\nleading newline',
  'a\n\n\nb\n \nc',
  'indented\n    four\n        eight\n\t\ttabs',
  'nbsp\u00a0here and\u2003em space and\u2009thin',
  'zero\u200bwidth\u200cnon\u200djoiner',
  '\u3000ideographic space\u3000',
];

const SCRIPTS = [
  '中文文本测试：今天天气很好，我们去公园散步吧。',
  '人工智能正在改变世界。机器学习、深度学习和自然语言处理是其核心技术。',
  '日本語のテキストです。ひらがな、カタカナ、漢字が混ざっています。',
  'トークナイザーのテスト：東京都渋谷区',
  '한국어 텍스트입니다. 안녕하세요, 만나서 반갑습니다!',
  '繁體中文與简体中文混合：臺灣、台湾。',
  '全角文字：ＡＢＣ　ａｂｃ　（括弧）「引用」',
  'Русский текст: съешь же ещё этих мягких французских булок.',
  'Ελληνικά: Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο.',
  'हिन्दी: नमस्ते दुनिया, यह एक परीक्षण है।',
  'ภาษาไทย: สวัสดีครับ ยินดีต้อนรับ',
  'Tiếng Việt: Tôi yêu tiếng nước tôi từ khi mới ra đời.',
  'ქართული ენა და Հայերեն լեզու',
  'Mixed: English, 中文, 日本語, 한국어, Русский, العربية.',
];

const EMOJI = [
  '😀😃😄😁😆😅😂🤣',
  'family 👨‍👩‍👧‍👦 and couple 👩‍❤️‍👨',
  'skin tones 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿',
  'flags 🇯🇵 🇺🇸 🇫🇷 🇩🇪 🇧🇷 🏳️‍🌈 🏴‍☠️',
  'keycaps 1️⃣ 2️⃣ #️⃣ and ❤️ vs ❤',
  'professions 👩‍💻 👨‍🚀 🧑‍🔬 👩🏽‍🍳',
  'tag sequence 🏴󠁧󠁢󠁳󠁣󠁴󠁿 and 🏴󠁧󠁢󠁥󠁮󠁧󠁿',
  'emoji🎉without🎉spaces🎉',
  '🙂',
  '🧠⚡️🔥 done ✅ ❌ ⚠️',
];

const COMBINING = [
  'e\u0301 vs é (decomposed and composed)',
  'a\u0308o\u0308u\u0308 vs äöü',
  'Z\u0337\u0322a\u0335l\u0338g\u0336o\u0334 text',
  'n\u0303 ñ and c\u0327 ç',
  '\u1100\u1161\u11a8 vs 각 (Hangul jamo)',
  'q\u0307\u0323 stacked marks',
  'Å (U+212B) Å (U+00C5) A\u030a',
  'ﬁ ﬂ ﬀ ligatures and ǅ Ǆ',
  '\u0915\u094d\u0937 conjunct',
  'combining at start: \u0301x',
];

const RTL = [
  'العربية: مرحبا بالعالم، هذا اختبار.',
  'עברית: שלום עולם, זהו מבחן.',
  'فارسی: سلام دنیا',
  'mixed LTR and RTL: hello مرحبا world עולם end',
  'marks \u200fRLM\u200f and \u200eLRM\u200e and \u202aembed\u202c \u2067isolate\u2069',
  'numbers in RTL: ٣ تفاحات و 3 apples',
];

const SPECIAL_LITERALS = [
  '<s>',
  '</s>',
  '<unk>',
  '<pad>',
  '<s>Hello</s>',
  'x<s>y</s>z',
  '<s><s></s></s>',
  '< s > </ s>',
  '<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
  '<|im_start|> <|im_end|> <|endoftext|>',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<|end_of_text|> <|eot_id|> <|reserved_special_token_0|>',
  '<｜begin▁of▁sentence｜>',
  '<｜end▁of▁sentence｜>',
  '<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>hello<｜end▁of▁sentence｜>',
  '<think>\nreasoning\n</think>\n\nanswer',
  '<|im_start', 'im_end|>', '<|begin_of', '<｜begin▁of',
  'text with <s> inside and </s> at the end</s>',
  '  <s>  spaced  </s>  ',
];

const MISC = [
  '',
  'a',
  'A',
  '.',
  '!!!???...',
  'a'.repeat(300),
  '='.repeat(80),
  '-'.repeat(120),
  '#'.repeat(50) + ' heading',
  'don\'t won\'t it\'s we\'re they\'ve I\'m you\'ll he\'d',
  'DON\'T WON\'T IT\'S',
  'camelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_CASE',
  'https://example.com/path?query=1&other=two#fragment',
  'user@example.com, first.last+tag@sub.domain.org',
  '"double" \'single\' `back` «guillemets» „German“ “curly” ‘single curly’',
  '— – - ‐ ‒ ― dashes … ellipsis',
  '© ® ™ § ¶ † ‡ • ° ± × ÷ ≠ ≤ ≥ ∞ √ ∑ ∫ π Ω µ',
  '\uFEFFbyte order mark at the start',
  'control \u0007 bell \u001b escape \u0000 nul',
  'C:\\Users\\name\\file.txt and /usr/local/bin',
  '<html><body class="x">&amp; &lt; &gt; &#39;</body></html>',
  '{"json": [1, 2, {"nested": true}], "empty": {}}',
  '| col | col |\n|-----|-----|\n| 1   | 2   |',
  '**bold** _italic_ `code` [link](http://x.y) ![img](a.png)',
];

const PYTHON = `import json
from dataclasses import dataclass, field


@dataclass
class Message:
    role: str
    content: str = ""
    tags: list[str] = field(default_factory=list)

    def render(self, template: str) -> str:
        """Render the message with a template."""
        return template.format(role=self.role.upper(), content=self.content.strip())


def load(path: str) -> list[Message]:
    with open(path, encoding="utf-8") as f:
        return [Message(**json.loads(line)) for line in f if line.strip()]


if __name__ == "__main__":
    for i, m in enumerate(load("chat.jsonl")):
        print(f"{i:>4}: {m.render('[{role}] {content}')!r}")
        if i >= 10:
            break
`;

/** Source text of this repository's own files (TypeScript), cut into pieces. */
function code(budget: number): string[] {
  const dirs = [join(HERE, '..', 'src'), HERE];
  const files = dirs.flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.ts')).sort().map((f) => join(dir, f)));
  return pieces(files.map((f) => readFileSync(f, 'utf8')).join('\n'), budget, [250, 600, 150, 900, 400]);
}

export interface CorpusString {
  kind: string;
  text: string;
}

/** The corpus: several hundred strings, about 60 KB of UTF-8. */
export function tokenizerCorpus(): CorpusString[] {
  const sotu = stateOfTheUnion();
  const prose = [
    ...pieces(sotu.validation.map((d) => d.text).join('\n\n'), 26_000),
    ...pieces(
      mobyDick()
        .slice(1, 6)
        .map((d) => d.text)
        .join('\n\n'),
      12_000,
    ),
  ];
  const tagged = (kind: string, texts: string[]) => texts.map((text) => ({ kind, text }));
  const mixed = SCRIPTS.map((s, i) => `${s} ${EMOJI[i % EMOJI.length]} ${NUMBERS[i % NUMBERS.length]}${WHITESPACE[i % WHITESPACE.length]}${COMBINING[i % COMBINING.length]} ${RTL[i % RTL.length]} ${SPECIAL_LITERALS[i % SPECIAL_LITERALS.length]}`);
  return [
    ...tagged('prose', prose),
    ...tagged('code', [...code(14_000), ...pieces(PYTHON, 4_000, [300, 200, 500])]),
    ...tagged('numbers', NUMBERS),
    ...tagged('whitespace', WHITESPACE),
    ...tagged('scripts', SCRIPTS),
    ...tagged('emoji', EMOJI),
    ...tagged('combining', COMBINING),
    ...tagged('rtl', RTL),
    ...tagged('special', SPECIAL_LITERALS),
    ...tagged('misc', MISC),
    ...tagged('mixed', mixed),
  ];
}
