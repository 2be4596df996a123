// web/ansi.js: a small ANSI SGR renderer for the page's terminal.
//
// Command output arrives in chunks that may split an escape sequence anywhere. An AnsiRenderer
// keeps the current style and any incomplete sequence between calls to write(), and appends
// DOM text nodes and <span class="…"> elements to its target. It understands SGR (ESC [ … m):
// bold, dim, italic, underline, inverse, the 8/16 standard colours, 256-colour and truecolor
// foreground/background, and resets. Every other CSI/OSC sequence is dropped, and a lone
// carriage return before a newline is ignored. It never interprets output as HTML: text always
// goes into text nodes.

const ESC = '\x1b';

// xterm's 256-colour palette, computed once: 16 named, 6x6x6 cube, 24 greys.
const PALETTE = (() => {
  const base = ['#000000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5',
    '#666666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#ffffff'];
  const out = base.slice();
  const steps = [0, 95, 135, 175, 215, 255];
  for (let r = 0; r < 6; r++) for (let g = 0; g < 6; g++) for (let b = 0; b < 6; b++)
    out.push(rgb(steps[r], steps[g], steps[b]));
  for (let i = 0; i < 24; i++) { const v = 8 + i * 10; out.push(rgb(v, v, v)); }
  return out;
})();

function rgb(r, g, b) {
  const h = (n) => Math.max(0, Math.min(255, n | 0)).toString(16).padStart(2, '0');
  return `#${h(r)}${h(g)}${h(b)}`;
}

function emptyStyle() {
  return { bold: false, dim: false, italic: false, underline: false, inverse: false, fg: null, bg: null };
}

// Applies one SGR parameter list (numbers) to style, in place.
export function applySgr(style, params) {
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (p === 0) Object.assign(style, emptyStyle());
    else if (p === 1) style.bold = true;
    else if (p === 2) style.dim = true;
    else if (p === 3) style.italic = true;
    else if (p === 4) style.underline = true;
    else if (p === 7) style.inverse = true;
    else if (p === 22) { style.bold = false; style.dim = false; }
    else if (p === 23) style.italic = false;
    else if (p === 24) style.underline = false;
    else if (p === 27) style.inverse = false;
    else if (p >= 30 && p <= 37) style.fg = p - 30;
    else if (p === 39) style.fg = null;
    else if (p >= 40 && p <= 47) style.bg = p - 40;
    else if (p === 49) style.bg = null;
    else if (p >= 90 && p <= 97) style.fg = p - 90 + 8;
    else if (p >= 100 && p <= 107) style.bg = p - 100 + 8;
    else if (p === 38 || p === 48) {
      let colour = null;
      if (params[i + 1] === 5 && i + 2 < params.length) {
        colour = PALETTE[params[i + 2]] ?? null;
        i += 2;
      } else if (params[i + 1] === 2 && i + 4 < params.length) {
        colour = rgb(params[i + 2], params[i + 3], params[i + 4]);
        i += 4;
      } else {
        break; // malformed extended colour: ignore the rest of this sequence
      }
      if (p === 38) style.fg = colour; else style.bg = colour;
    }
  }
  return style;
}

function colourValue(c) {
  return typeof c === 'number' ? PALETTE[c] : c;
}

// Returns {className, css} describing how a run of text in `style` is shown.
export function styleToAttrs(style) {
  const classes = [];
  let fg = style.fg, bg = style.bg;
  if (style.inverse) { [fg, bg] = [bg ?? 'default-bg', fg ?? 'default-fg']; }
  const css = [];
  const put = (kind, c) => {
    if (c === null || c === undefined) return;
    if (c === 'default-bg' || c === 'default-fg') { classes.push(`ansi-${kind}-${c === 'default-bg' ? 'inv-bg' : 'inv-fg'}`); return; }
    if (typeof c === 'number' && c < 16) classes.push(`ansi-${kind}${c}`);
    else css.push(`${kind === 'fg' ? 'color' : 'background-color'}:${colourValue(c)}`);
  };
  put('fg', fg);
  put('bg', bg);
  if (style.bold) classes.push('ansi-bold');
  if (style.dim) classes.push('ansi-dim');
  if (style.italic) classes.push('ansi-italic');
  if (style.underline) classes.push('ansi-underline');
  return { className: classes.join(' '), css: css.join(';') };
}

export class AnsiRenderer {
  // target: the element that receives the output. doc: its document (for tests without a DOM,
  // pass any object with createElement/createTextNode).
  constructor(target, doc = target.ownerDocument) {
    this.target = target;
    this.doc = doc;
    this.style = emptyStyle();
    this.pending = '';
  }

  clear() {
    this.target.textContent = '';
    this.style = emptyStyle();
    this.pending = '';
  }

  // Appends `text` rendered with the current style. `extraClass` marks a whole chunk
  // (e.g. "stderr") without changing the ANSI state.
  write(text, extraClass = '') {
    let s = this.pending + text;
    this.pending = '';
    let i = 0;
    let run = '';
    const flush = () => {
      if (!run) return;
      this.emit(run.replace(/\r\n/g, '\n'), extraClass);
      run = '';
    };
    while (i < s.length) {
      const e = s.indexOf(ESC, i);
      if (e < 0) { run += s.slice(i); break; }
      run += s.slice(i, e);
      const kind = s[e + 1];
      if (kind === undefined) { this.pending = s.slice(e); i = s.length; break; }
      if (kind === '[') {
        // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e
        let j = e + 2;
        while (j < s.length && s.charCodeAt(j) >= 0x20 && s.charCodeAt(j) <= 0x3f) j++;
        if (j >= s.length) {
          if (s.length - e > 64) { i = s.length; break; } // runaway sequence: drop it
          this.pending = s.slice(e); i = s.length; break;
        }
        const final = s[j];
        if (final === 'm') {
          flush();
          const params = s.slice(e + 2, j).split(/[;:]/).map((x) => (x === '' ? 0 : parseInt(x, 10))).filter((n) => Number.isFinite(n));
          applySgr(this.style, params);
        }
        i = j + 1;
      } else if (kind === ']') {
        // OSC: ends with BEL or ESC \
        const bel = s.indexOf('\x07', e + 2);
        const st = s.indexOf(ESC + '\\', e + 2);
        const end = bel < 0 ? st : (st < 0 ? bel : Math.min(bel, st));
        if (end < 0) {
          if (s.length - e > 512) { i = s.length; break; }
          this.pending = s.slice(e); i = s.length; break;
        }
        i = end + (s[end] === ESC ? 2 : 1);
      } else {
        i = e + 2; // two-byte escape (e.g. ESC =): dropped
      }
    }
    flush();
  }

  emit(text, extraClass) {
    const { className, css } = styleToAttrs(this.style);
    const cls = [className, extraClass].filter(Boolean).join(' ');
    if (!cls && !css) {
      this.target.appendChild(this.doc.createTextNode(text));
      return;
    }
    const span = this.doc.createElement('span');
    if (cls) span.className = cls;
    if (css) span.setAttribute('style', css);
    span.textContent = text;
    this.target.appendChild(span);
  }
}
