// pre-node.js (--pre-js): in Node, hand the glue the wasm bytes next to this file.  The
// 3.1.6 glue would otherwise fetch() a filesystem path, which Node 18+'s global fetch
// rejects (notes §1.3).  Browsers skip this and fetch codecanvas.wasm next to the script.
if (typeof process == 'object' && typeof process.versions == 'object' &&
    typeof process.versions.node == 'string' && !Module['wasmBinary'] && !Module['instantiateWasm'])
  Module['wasmBinary'] = require('fs').readFileSync(__filename.replace(/\.[cm]?js$/, '.wasm'));
