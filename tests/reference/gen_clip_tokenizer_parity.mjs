// Writes tests/fixtures/tokenizer/clip_parity.json: CLIP token ids of many varied strings, as the
// Hugging Face *fast* CLIP tokenizer (the Rust `tokenizers` library) computes them.
//
// It needs Hugging Face's Node binding of `tokenizers` (native binary included), installed in some
// folder outside the repository:
//
//     mkdir -p /tmp/tok && cd /tmp/tok && npm install tokenizers@0.23.2
//     NODE_PATH=/tmp/tok/node_modules node /path/to/bgevl/tests/reference/gen_clip_tokenizer_parity.mjs
//
// (ES modules ignore NODE_PATH, so the script resolves `tokenizers` through createRequire, which
// honours it; running it from the folder where tokenizers is installed works too.)
//
// Options: --vocab DIR (default: ../shared/data/tokenizers/clip beside the repository), --out FILE
// (default: tests/fixtures/tokenizer/clip_parity.json), --save-tokenizer FILE (also write the
// tokenizer.json it built), --dump-unicode FILE (also write, for every code point, how the
// reference classifies it: "HEX L|N|O|S [lower-case code points]", L = \p{L}, N = \p{N}, S = \s,
// O = other; src/text/unicode.cpp's tables for code points newer than ICU 72 come from comparing
// this dump with ICU).
//
// The tokenizer.json is built from vocab.json + merges.txt exactly as transformers 4.45.2's
// CLIPConverter (convert_slow_tokenizer.py) does, after the slow CLIPTokenizer has read the files:
//   - merges: file.strip().split("\n")[1 : 49152 - 256 - 2 + 1], each line split on whitespace,
//     de-duplicated keeping the first occurrence (bpe_ranks is a dict; the converter takes its keys);
//   - model BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="</w>",
//     fuse_unk=False, unk_token="<|endoftext|>");
//   - normalizer Sequence[NFC, Replace(Regex(\s+), " "), Lowercase];
//   - pre-tokenizer Sequence[Split(Regex(CLIP pattern), "removed", invert=True),
//     ByteLevel(add_prefix_space=False)] (ByteLevel keeps its default use_regex=True);
//   - post-processor RobertaProcessing(sep=eos, cls=bos, add_prefix_space=False, trim_offsets=False);
//   - added tokens <|startoftext|> and <|endoftext|>, special, normalized=True (as in the
//     added_tokens_decoder of openai/clip-vit-* tokenizer_config.json: matched in the normalized
//     text, so "<|ENDOFTEXT|>" is the special token too).
// It checks the result on the known example "a photo of a cat" -> 49406 320 1125 539 320 2368 49407.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { Tokenizer, lowercase } = require('tokenizers');
const tokenizersVersion = require('tokenizers/package.json').version;

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
}
const vocabDir = path.resolve(opt('--vocab', path.join(repo, '..', 'shared', 'data', 'tokenizers', 'clip')));
const outFile = path.resolve(opt('--out', path.join(repo, 'tests', 'fixtures', 'tokenizer', 'clip_parity.json')));
const saveTokenizer = opt('--save-tokenizer', null);
const dumpUnicode = opt('--dump-unicode', null);

// ---- tokenizer.json as CLIPConverter writes it -------------------------------------------------
const vocab = JSON.parse(fs.readFileSync(path.join(vocabDir, 'vocab.json'), 'utf8'));
// Python's str.strip()/str.split() whitespace (ASCII part; the byte-level alphabet has no other).
const merges = [];
{
  const lines = fs.readFileSync(path.join(vocabDir, 'merges.txt'), 'utf8').replace(/\r\n?/g, '\n')
    .replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/g, '').split('\n').slice(1, 49152 - 256 - 2 + 1);
  const seen = new Set();
  for (const line of lines) {
    const parts = line.split(/[\s\x1c-\x1f\x85]+/).filter((p) => p.length > 0);
    if (parts.length !== 2) throw new Error(`merges.txt: bad line ${JSON.stringify(line)}`);
    const key = parts[0] + ' ' + parts[1];
    if (seen.has(key)) continue;
    seen.add(key);
    merges.push(parts);
  }
}
const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
const special = (id, content) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true,
});
const clipPattern = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
const tokenizerJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(vocab[BOS], BOS), special(vocab[EOS], EOS)],
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'NFC' },
      { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
      { type: 'Lowercase' },
    ],
  },
  pre_tokenizer: {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: clipPattern }, behavior: 'Removed', invert: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    ],
  },
  post_processor: {
    type: 'RobertaProcessing',
    sep: [EOS, vocab[EOS]],
    cls: [BOS, vocab[BOS]],
    trim_offsets: false,
    add_prefix_space: false,
  },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: EOS,
    continuing_subword_prefix: '',
    end_of_word_suffix: '</w>',
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    vocab,
    merges,
  },
};
const jsonText = JSON.stringify(tokenizerJson);
if (saveTokenizer) fs.writeFileSync(saveTokenizer, jsonText);
const tok = Tokenizer.fromString(jsonText);

async function ids(text) {
  const enc = await tok.encode(text);
  return Array.from(enc.getIds());
}

// ---- the strings -------------------------------------------------------------------------------
const cases = [];
const add = (...texts) => { for (const t of texts) cases.push(t); };

// plain captions
add('a photo of a cat', 'A photo of a dog.', 'a man riding a horse on the beach at sunset',
  'Two children playing soccer in a park', 'an aerial view of a city at night',
  'A close-up photo of a red rose with water droplets', 'a bowl of fruit on a wooden table',
  'The quick brown fox jumps over the lazy dog', 'a black and white photograph of an old car',
  'a painting of a lighthouse in a storm, oil on canvas', 'Find me a similar image with a blue sky.',
  'make the background darker', 'A cute corgi wearing sunglasses', 'a diagram of the human heart',
  'satellite image of farmland', 'a person holding an umbrella in the rain',
  'snow-covered mountains under a clear sky', 'an empty street in tokyo at 3am',
  'a bride and groom', 'a slice of pizza', 'astronaut', 'photo', 'a', 'I', 'x y z',
  'a group of people standing around a kitchen', 'A Stop sign on a street corner',
  'Change the color of the car to red', 'with a hat', 'without glasses',
  'a giraffe eating leaves from a tree', 'an elephant', 'supercalifragilisticexpialidocious',
  'antidisestablishmentarianism', 'pneumonoultramicroscopicsilicovolcanoconiosis',
  'Represent the given image.', 'Retrieve the image that matches the caption.',
  'a photo of a cat ', ' a photo of a cat', 'a  photo  of  a  cat');

// punctuation runs
add('Hello, world!', 'wait... what?!', '!!!', '?!?!?!', '--', '---', '(parenthesis)', '[brackets] {braces}',
  'a/b\\c', 'semi;colon:colon', '"quoted"', '#hashtag @mention', '$100 & 50%', '***bold***', '<html>',
  'a+b=c', '~tilde~ `backtick` ^caret^ |pipe|', '...', '…', '—em dash– en dash', '«guillemets»',
  '¿qué? ¡sí!', 'x_y__z', '_', '¡', '.,;:!?', '!@#$%^&*()_+-=[]{}|;\':",./<>?', 'end.', '.start');

// digits and numbers
add('0', '7', '42', '2024', '3.14159', '1,000,000', 'room 101', 'version 2.0.1', 'H2O and CO2',
  '1st 2nd 3rd 4th', '10x zoom', '-5 degrees', '½ ¾ ² ³', '٣ ٤ ٥ Arabic-Indic digits', '१२३ Devanagari digits',
  '①②③', 'Ⅻ roman numeral', '0123456789', '३.१४', 'π ≈ 3.14');

// accents, composed and decomposed (NFC)
add('café', 'cafe\u0301', 'naïve', 'nai\u0308ve', 'résumé', 're\u0301sume\u0301', 'Ångström', 'A\u030Angstro\u0308m',
  'crème brûlée', 'cre\u0300me bru\u0302le\u0301e', 'São Paulo', 'Sa\u0303o Paulo', 'ñandú', 'n\u0303andu\u0301',
  'Zürich', 'Zu\u0308rich', 'Ω ohm sign \u2126', 'Kelvin \u212A', 'angstrom sign \u212B',
  'e\u0301\u0301 double acute', 'q\u0307 no precomposed', 'ḍ\u0307 reordering d\u0307\u0323', 'Ḁ\u0325',
  'vietnamese tiếng việt', 'tie\u0302\u0301ng vie\u0323\u0302t', '\u0301 leading combining mark',
  'a\u0300\u0301\u0302\u0303\u0304 stacked', 'ﬁ ligature ﬂ', 'Ǆ ǅ ǆ digraphs');

// upper case, Turkish İ, German ß, Greek sigma
add('HELLO WORLD', 'Hello World', 'CamelCaseWord', 'iPhone XS MAX', 'İstanbul', 'İ', 'ISTANBUL ıstanbul',
  'DİYARBAKIR', 'Straße', 'STRASSE', 'ẞ capital sharp s', 'Maße und Größe', 'ΟΔΥΣΣΕΥΣ', 'Σ', 'ΣΑΣ σας',
  'ǅemal', 'ＡＢＣ fullwidth', 'ＡＢＣ１２３', 'Ⓐ circled', 'ᏣᎳᎩ Cherokee ꭰ', 'ᲒᲔᲝᲠᲒᲘᲐ Georgian Mtavruli',
  '𐐀𐐁 Deseret', '𝐀𝐁𝐂 math bold', 'ŉ Å ǰ', "DON'T", "IT'S", "WE'RE");

// CJK
add('一只猫坐在窗台上', '猫', '中文字符测试', '北京天安门', '我喜欢吃苹果和香蕉。', '東京タワーの写真',
  'ひらがなとカタカナ', 'カタカナ', 'ｶﾀｶﾅ halfwidth', 'ラーメン', '漢字かな交じり文', '한국어 문장입니다',
  '서울의 야경', '안녕하세요', '\u1100\u1161\u11A8 conjoining jamo', '中文 and English mixed', '日本語、句読点。',
  '「引用」', '〇一二三', '𠀀𠀁 CJK extension B', '㊀㊁', '繁體中文測試');

// emoji
add('I love it 😍', '😀', '😀😃😄', '👍🏽', '👍🏻👍🏿', '👨\u200D👩\u200D👧\u200D👦', '👩🏾\u200D💻', '🏳️\u200D🌈',
  '❤️', '❤\uFE0F\u200D🔥', '🇺🇸🇯🇵 flags', '#️⃣ keycap', 'cat 🐈 and dog 🐕', '🎉🎉🎉 party',
  '☕ coffee', '✨sparkles✨', '🧑\u200D🤝\u200D🧑', '🫠 new emoji', '😀a😀', ':) :( :D');

// whitespace runs
add('a\tb', 'a\nb', 'a\r\nb', 'a\n\n\nb', 'tab\t\tseparated\tvalues', '  leading spaces', 'trailing spaces   ',
  'a\u00A0b NBSP', 'a\u3000b ideographic space', 'a\u2002b\u2003c\u2009d en em thin', 'a\u202Fb narrow NBSP',
  'a\u205Fb', 'a\u1680b ogham', 'a\u2028b\u2029c line/para sep', 'a\u0085b NEL', 'a\u000Bb\u000Cc VT FF',
  'a\u200Bb zero width space', 'a\u180Eb mongolian vowel separator', 'a\uFEFFb BOM', ' ', '   ', '\t\n',
  '\u00A0', '\u3000\u3000', 'a\u001Cb\u001Dc\u001Ed\u001Fe', 'a\u0000b NUL', 'a\u0007b bell', 'x \t \n y');

// contractions
add("it's", "don't", "you're", "we've", "I'm", "they'll", "he'd", "IT'S", "Don'T", "YOU'RE", "I'M",
  "it'S a cat's toy", "can't won't shouldn't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''s", "?'s",
  "'sa 'tb 'rec", "rock'n'roll", "o'clock", "the '90s", "'quoted'", "'", "''", "x's y't z're");

// apostrophe variants
add('it\u2019s', 'don\u2019t', 'it\u2018s', 'it\u02BCs', 'it\u02B9s', 'it\uFF07s', 'it`s', 'it\u00B4s',
  "‘single’ “double”", '„German“', 'it\u2032s prime');

// long texts (more than 77 tokens among them; ids are stored in full)
const lorem = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut '
  + 'labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris '
  + 'nisi ut aliquip ex ea commodo consequat.';
add(lorem, lorem + ' ' + lorem,
  'a very long caption describing a busy street scene with many cars, buses, bicycles and pedestrians, '
  + 'tall buildings with glass windows reflecting the evening sun, street vendors selling food, a police '
  + 'officer directing traffic at the intersection, pigeons on the sidewalk, and a large billboard showing '
  + 'an advertisement for a new smartphone with a bright colorful display',
  'word '.repeat(80).trim(), 'a'.repeat(300), 'ab'.repeat(120), '😀'.repeat(40), '猫'.repeat(100),
  '1234567890'.repeat(10), '!?'.repeat(60), 'Straße İstanbul café '.repeat(10));

// empty
add('', '\n', '\u200B');

// special tokens in the text
add('<|endoftext|>', '<|startoftext|>', 'a cat<|endoftext|>', '<|endoftext|>a cat', 'a <|endoftext|> b',
  '!!<|endoftext|>??', 'x<|startoftext|>y<|endoftext|>z', '<|ENDOFTEXT|>', '<|EndOfText|> mixed case',
  '<|endoftext|><|endoftext|>', '<|endoftext|', '<|endof text|>', '< |endoftext|>', '<|endoftext|>\u0338',
  '<|startoftext|>a photo of a cat<|endoftext|>');

// URLs and code
add('https://www.example.com/path/to/page?query=1&b=2#frag', 'http://localhost:8080', 'user@example.com',
  'www.google.com', 'https://huggingface.co/BAAI/BGE-VL-base', 'for (int i = 0; i < n; ++i) { x += i; }',
  'def f(x):\n    return x ** 2', 'print("hello world")', 'const a = [1, 2, 3].map((v) => v * 2);',
  '#include <iostream>', 'SELECT * FROM images WHERE id = 42;', '$ ls -la /usr/bin | grep -i python',
  'a_b_c snake_case', 'camelCase PascalCase kebab-case', '{"key": "value", "n": 3}', 'C:\\Windows\\System32',
  '0x1F600 0b1010', '@@ -1,3 +1,4 @@');

// other scripts
add('مرحبا بالعالم', 'القطة جالسة على النافذة', 'ٱلْعَرَبِيَّة with harakat', 'שלום עולם', 'नमस्ते दुनिया',
  'हिन्दी भाषा', 'क्षत्रिय', 'বাংলা ভাষা', 'தமிழ்', 'ภาษาไทย', 'Привет, мир!', 'ПРИВЕТ МИР', 'Ёлка ёлка',
  'Їжак і ґанок', 'Γειά σου Κόσμε', 'ΓΕΙΑ ΣΟΥ', 'άέήίόύώ ΐΰ', 'α\u0301 decomposed tonos', 'Ελληνικά',
  'ქართული ენა', 'Հայերեն', 'አማርኛ', 'ᠮᠣᠩᠭᠣᠯ', 'ꦗꦮ', '𓀀 hieroglyph', 'ᚠᚢᚦ runes', 'Ꭰ', 'ߒߞߏ');

// code points newer than Unicode 15.0 (ICU 72) and combining marks newer than Unicode 9.0 (the
// reference's NFC tables)
add('\u1C89\u1C8A Cyrillic TJE', 'A\uA7CB\uA7DCb', '\u{10D50}\u{10D70}\u{10D40} Garay', '\u{2EBF0}\u{2EBF1} CJK ext I',
  '\uA7CE\u{16EA0} lower case from Unicode 17', '\u{11380}\u{113B8}\u{113C2}', 'x\u{1E5F1}\u{1E5F2}y', 'e\u1DF6\u0301',
  'a\u0301\u1DF6', 'b\u1DF6\u0334', '\u{16D40}\u{16D70}');

// odd code points
add('\uE000 private use', '\uFFFD replacement', '\u{10FFFD}', '\u0378 unassigned', '\u{1F7F0}',
  '\u00AD soft hyphen', 'a\u00ADb', '\u0345 ypogegrammeni', 'ᾳ ᾼ ῳ', '\u1E9E\u00DF', 'ꟊ', 'ǈ',
  '\u{1E900}\u{1E922} Adlam', '\u{104B0}\u{104D8} Osage', 'ℌ ℍ ℎ', '℃ ℉', '™ © ®', '€ £ ¥ ₹');

// seeded mixtures of the above fragments
const fragments = ['cat', 'Dog', "'s", "'T", ' ', '  ', '\t', '\n', '\u00A0', '\u3000', '!', '...', '42', '7',
  'é', 'e\u0301', 'İ', 'ß', 'Σ', '猫', 'カ', '한', '😀', '👍🏽', '\u200D', '<|endoftext|>', 'привет', 'नमस्ते',
  'مرحبا', 'https://x.y/z', '_', '-', '—', '’', 'ǅ', '½', '①', '\u0301', 'A', 'Z', '0'];
let seed = 12345;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
for (let i = 0; i < 40; ++i) {
  const n = 1 + Math.floor(rand() * 12);
  let s = '';
  for (let j = 0; j < n; ++j) s += fragments[Math.floor(rand() * fragments.length)];
  add(s);
}

// ---- run ---------------------------------------------------------------------------------------
if (dumpUnicode) {
  // Letters merge with the "a"s around them, numbers stand alone, others merge with each other,
  // spaces vanish: the piece count tells the class.
  const pre = tok.getPreTokenizer();
  const low = lowercase();
  const lines = [];
  for (let cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    const p = pre.preTokenizeString('a' + c + 'a1' + c + c + '1').map((x) => x[0]);
    let k;
    if (p.length === 4 && p[0] !== 'a') k = 'L';
    else if (p.length === 7) k = 'N';
    else if (p.length === 6) k = 'O';
    else if (p.length === 4) k = 'S';
    else throw new Error(`U+${cp.toString(16)}: unexpected pieces ${JSON.stringify(p)}`);
    let line = cp.toString(16).toUpperCase() + ' ' + k;
    const l = low.normalizeString(c);
    if (l !== c) line += ' ' + Array.from(l).map((x) => x.codePointAt(0).toString(16).toUpperCase()).join(',');
    lines.push(line);
  }
  fs.writeFileSync(dumpUnicode, lines.join('\n') + '\n');
}

const known = await ids('a photo of a cat');
const knownExpected = [49406, 320, 1125, 539, 320, 2368, 49407];
if (JSON.stringify(known) !== JSON.stringify(knownExpected)) {
  throw new Error(`"a photo of a cat" gave ${known}, expected ${knownExpected}: the tokenizer.json is wrong`);
}
const seen = new Set();
const out = [];
for (const text of cases) {
  if (seen.has(text)) continue;
  seen.add(text);
  out.push({ text, ids: await ids(text) });
}
const doc = {
  generator: 'tests/reference/gen_clip_tokenizer_parity.mjs',
  tokenizers_version: tokenizersVersion,
  vocab: path.relative(repo, vocabDir).split(path.sep).join('/'),
  cases: out,
};
fs.mkdirSync(path.dirname(outFile), { recursive: true });
// One case per line keeps the fixture readable and its diffs small.
const head = JSON.stringify({ ...doc, cases: [] }).replace(/\[\]\}$/, '[\n');
const body = out.map((c) => ' ' + JSON.stringify(c)).join(',\n');
fs.writeFileSync(outFile, head + body + '\n]}\n');
const longest = Math.max(...out.map((c) => c.ids.length));
console.log(`wrote ${out.length} cases to ${outFile} (tokenizers ${tokenizersVersion}; longest ${longest} ids)`);
