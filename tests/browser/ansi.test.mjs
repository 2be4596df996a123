// tests/browser/ansi.test.mjs: the page's ANSI SGR renderer (web/ansi.js), run in Node with a
// minimal stand-in for the DOM (it only needs createElement/createTextNode/appendChild).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const src = process.env.CC_SOURCE_DIR ?? path.resolve(import.meta.dirname, '../..');
const { AnsiRenderer } = await import(pathToFileURL(path.join(src, 'web/ansi.js')).href);

function fakeDoc() {
  const node = (tag) => ({
    tag, children: [], attrs: {}, className: '', textContent: '',
    setAttribute(k, v) { this.attrs[k] = v; },
    appendChild(c) { this.children.push(c); return c; },
  });
  return { createElement: (t) => node(t), createTextNode: (t) => ({ text: t }) };
}

function render(chunks) {
  const doc = fakeDoc();
  const target = { children: [], appendChild(c) { this.children.push(c); }, set textContent(_) { this.children = []; } };
  const r = new AnsiRenderer(target, doc);
  for (const c of chunks) r.write(c);
  return target.children.map((c) => (c.tag ? { text: c.textContent, cls: c.className, css: c.attrs.style ?? '' } : { text: c.text }));
}

test('plain text stays text', () => {
  assert.deepEqual(render(['hello\n']), [{ text: 'hello\n' }]);
});

test('basic colours, bold and reset', () => {
  assert.deepEqual(render(['\x1b[1;31mred\x1b[0m plain']), [
    { text: 'red', cls: 'ansi-fg1 ansi-bold', css: '' },
    { text: ' plain' },
  ]);
});

test('a sequence split across chunks is still applied', () => {
  assert.deepEqual(render(['a\x1b[3', '2mgreen\x1b', '[39m b']), [
    { text: 'a' }, { text: 'green', cls: 'ansi-fg2', css: '' }, { text: ' b' },
  ]);
});

test('256-colour and truecolor become inline colours; bright colours map to classes', () => {
  const out = render(['\x1b[38;5;208mo\x1b[48;2;1;2;3mx\x1b[0m\x1b[92my']);
  assert.deepEqual(out[0], { text: 'o', cls: '', css: 'color:#ff8700' });
  assert.deepEqual(out[1], { text: 'x', cls: '', css: 'color:#ff8700;background-color:#010203' });
  assert.deepEqual(out[2], { text: 'y', cls: 'ansi-fg10', css: '' });
});

test('non-SGR escapes (cursor moves, OSC titles) are dropped; CRLF becomes LF', () => {
  assert.deepEqual(render(['\x1b]0;title\x07a\x1b[2Kb\r\n']), [{ text: 'ab\n' }]);
});

test('markup in output is never interpreted', () => {
  assert.deepEqual(render(['<img src=x onerror=alert(1)>']), [{ text: '<img src=x onerror=alert(1)>' }]);
});
