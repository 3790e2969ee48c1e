// tiktoken_bench.js -- the peer of bench/bench_tokenizer.c: the npm package
// tiktoken (OpenAI's tokenizer compiled to WASM) encoding the same text with
// GPT-2's ranks (encode_ordinary: special tokens are plain text), on one
// core. Prints one line: "tiktoken BYTES IDS FNV1A64-OF-IDS BEST_SECONDS FIRST_SECONDS".
//
//   NODE_PATH=build/npm/node_modules node bench/tiktoken_bench.js REPS FILE...
'use strict';
const fs = require('fs');
const { get_encoding } = require('tiktoken');
const reps = parseInt(process.argv[2], 10);
const text = Buffer.concat(process.argv.slice(3).map((f) => fs.readFileSync(f))).toString('utf8');
const enc = get_encoding('gpt2');
let best = Infinity, first = 0, ids;
for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    ids = enc.encode_ordinary(text);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r === 0) first = s;
    best = Math.min(best, s);
}
let h = 0xcbf29ce484222325n;
for (const id of ids) h = BigInt.asUintN(64, (h ^ BigInt(id)) * 0x100000001b3n);
console.log(`tiktoken ${Buffer.byteLength(text)} ${ids.length} ${h.toString(16).padStart(16, '0')} ${best} ${first}`);
enc.free();
