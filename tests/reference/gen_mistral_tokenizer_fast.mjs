// Encodes texts with Hugging Face's *fast* tokenizer (the Rust `tokenizers` library, Node binding)
// for tests/reference/gen_mistral_tokenizer_parity.py, which writes the tokenizer.json (built as
// transformers 4.45.2's LlamaConverter + LlamaTokenizerFast do) and calls this script:
//
//     NODE_PATH=/path/to/node_modules node gen_mistral_tokenizer_fast.mjs TOKENIZER_JSON TEXTS_JSON OUT_JSON
//
// TEXTS_JSON is a JSON list of strings; OUT_JSON gets {"tokenizers": VERSION, "ids": [[...], ...]}
// (the ids of tok.encode(text) with add_special_tokens, i.e. BOS from the post-processor).
// `tokenizers` (npm, native binary included; 0.23.2 was used) is installed outside the repository,
// e.g. `mkdir -p /tmp/tok && cd /tmp/tok && npm install tokenizers@0.23.2`. ES modules ignore
// NODE_PATH, so it is resolved through createRequire, which honours it.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const { Tokenizer } = require('tokenizers');
const version = require('tokenizers/package.json').version;

const [tokenizerJson, textsJson, outJson] = process.argv.slice(2);
if (!outJson) {
  console.error('usage: node gen_mistral_tokenizer_fast.mjs TOKENIZER_JSON TEXTS_JSON OUT_JSON');
  process.exit(2);
}
const tok = Tokenizer.fromFile(tokenizerJson);
const texts = JSON.parse(fs.readFileSync(textsJson, 'utf8'));
const ids = [];
for (const t of texts) {
  const e = await tok.encode(t);
  ids.push(Array.from(e.getIds()));
}
fs.writeFileSync(outJson, JSON.stringify({ tokenizers: version, ids }));
