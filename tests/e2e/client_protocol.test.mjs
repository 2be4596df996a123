// The protocol data files (tests/protocol/cases/*.json) through the WASM build of cc_proto,
// with the same runner function (cc_proto_case_run) and expectations as the native
// test_protocol_files.  Needs CC_WEB_DIR (the wasm output) and CC_SOURCE_DIR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const webDir = process.env.CC_WEB_DIR;
const srcDir = process.env.CC_SOURCE_DIR;

test('protocol data files pass through the wasm codec', async () => {
  assert.ok(webDir && srcDir, 'CC_WEB_DIR and CC_SOURCE_DIR must be set');
  const { default: factory } = await import(pathToFileURL(join(webDir, 'test', 'cc_protocol_cases.js')));
  const M = await factory();
  const dir = join(srcDir, 'tests', 'protocol', 'cases');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  assert.ok(files.length > 0, `no cases in ${dir}`);
  const failures = [];
  for (const f of files) {
    const bytes = readFileSync(join(dir, f));
    const p = M._malloc(bytes.length + 1);
    M.HEAPU8.set(bytes, p);
    M.HEAPU8[p + bytes.length] = 0;
    const out = M._cc_wasm_protocol_case(p, bytes.length);
    M._free(p);
    const text = M.UTF8ToString(out);
    M._cc_wasm_free(out);
    const rc = Number(text.slice(0, text.indexOf(' ')));
    if (rc !== 0) failures.push(`${f}: ${text}`);
  }
  assert.deepEqual(failures, [], `${failures.length} of ${files.length} cases failed`);
});
