// web/app.js: the codecanvas page's entry module: loads the panels and starts.
//
// Everything the page does goes through the client's public JS API (codecanvas.js, loaded at
// run time from the URL in <meta name="codecanvas-client">). The page logic is split by
// panel into ES modules under web/js/, which share `state` and talk through the events of
// web/js/state.js, so a change to one panel touches one file:
//   js/state.js      shared state and the event hub     js/util.js       helpers
//   js/conn.js       token, client, pill, banner, offline, call()
//   js/snapshot.js   the page snapshot in IndexedDB (first paint before any answer)
//   js/projects.js   project list: create, select, delete
//   js/files.js      file tree and editor               js/setup.js      drop/upload, templates
//   js/output.js     the output area (ANSI)             js/run.js        the command box
//   js/history.js    execution history, clear cache     js/settings.js   project info and settings
//   js/devserver.js  dev server and preview             js/processes.js  processes, Stop
//   js/terminal.js   the interactive terminal (xterm.js, over the client's openTerminal)
// Two caches are involved: the client's own (SQLite in IndexedDB; reads come back marked
// `stale: true` when the worker is unreachable) and the page snapshot (js/snapshot.js).

import './js/output.js';
import './js/projects.js';
import './js/files.js';
import './js/setup.js';
import './js/run.js';
import './js/history.js';
import './js/settings.js';
import './js/devserver.js';
import './js/processes.js';
import './js/terminal.js';
import { renderProjects } from './js/projects.js';
import { boot } from './js/conn.js';

renderProjects();
boot();
