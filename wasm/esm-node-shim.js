// esm-node-shim.js (--extern-pre-js): the 3.1.6 EXPORT_ES6 glue uses require, __filename and
// __dirname in its Node branch, which an ES module lacks (notes §1.5, §7).  Browsers skip it.
const __node = typeof process == 'object' && typeof process.versions == 'object' && typeof process.versions.node == 'string';
const require = __node ? (await import('node:module')).createRequire(import.meta.url) : undefined;
const __filename = __node ? (await import('node:url')).fileURLToPath(import.meta.url) : undefined;
const __dirname = __node ? (await import('node:path')).dirname(__filename) : undefined;
