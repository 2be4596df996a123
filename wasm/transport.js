/*
 * transport.js (--js-library): the imports of wasm/exports.c.
 *
 * cc_js_send runs fetch() for one request and streams the response body back into C
 * (cc_wasm_on_data per chunk, cc_wasm_on_end once) — callbacks, not ASYNCIFY.  The
 * per-client JS state lives on Module (set by codecanvas-api.js):
 *   Module.ccConfig   {url, token, fetch}
 *   Module.ccPending  Map req -> {signal, fetchTimeoutMs, ...}
 *   Module.ccDone(req, ok, text), Module.ccEvent(req, type, text),
 *   Module.ccGeneration(project, generation)
 * This file passes through emcc's 3.1.6 optimizer: no `?.`, no `#private`, no BigInt
 * literals (notes §1.6).
 */
mergeInto(LibraryManager.library, {
  cc_js_send__deps: ['malloc', 'free'],
  cc_js_send: function (handle, req, body, len, stream) {
    var cfg = Module['ccConfig'];
    var info = Module['ccPending'].get(req) || {};
    var payload = HEAPU8.slice(body, body + len);
    var ctrl = new AbortController();
    var why = null;
    function abortWith(kind, msg) {
      if (!why) { why = { kind: kind, msg: msg }; ctrl.abort(); }
    }
    var signal = info.signal;
    function onAbort() { abortWith('canceled', 'aborted by the caller'); }
    var timer = 0;
    if (info.fetchTimeoutMs > 0)
      timer = setTimeout(function () {
        abortWith('timeout', 'no complete answer from the worker within ' + info.fetchTimeoutMs + ' ms');
      }, info.fetchTimeoutMs);
    if (signal) {
      if (signal.aborted) onAbort(); else signal.addEventListener('abort', onAbort);
    }
    info.sent = true;
    info.abort = function () { abortWith('canceled', 'client closed'); };
    // Copies one chunk into wasm memory (module malloc; HEAPU8 read after malloc, since
    // memory growth replaces the view) and hands it to C.
    function feed(bytes) {
      if (Module['ccClosed']) return; // the C handle is gone
      var p = _malloc(bytes.length || 1);
      HEAPU8.set(bytes, p);
      Module['_cc_wasm_on_data'](handle, req, p, bytes.length, Date.now());
      _free(p);
    }
    function end(status, kind, msg) {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', onAbort);
      if (Module['ccClosed']) return;
      var k = 0, m = 0;
      if (kind) {
        k = _malloc(lengthBytesUTF8(kind) + 1); stringToUTF8(kind, k, lengthBytesUTF8(kind) + 1);
        m = _malloc(lengthBytesUTF8(msg) + 1); stringToUTF8(msg, m, lengthBytesUTF8(msg) + 1);
      }
      Module['_cc_wasm_on_end'](handle, req, status, k, m, Date.now());
      if (k) { _free(k); _free(m); }
    }
    var doFetch = cfg.fetch || fetch;
    var headers = { 'Content-Type': 'application/json' };
    if (cfg.token) headers['Authorization'] = 'Bearer ' + cfg.token;
    (async function () {
      var status = 0;
      try {
        if (why) throw new Error(why.msg);
        var resp = await doFetch(cfg.url + '/v1/rpc', {
          method: 'POST', headers: headers, body: payload, signal: ctrl.signal
        });
        status = resp.status;
        if (resp.body && resp.body.getReader) {
          var reader = resp.body.getReader();
          for (;;) {
            var r = await reader.read();
            if (r.done) break;
            if (r.value && r.value.length) feed(r.value);
          }
        } else {
          feed(new Uint8Array(await resp.arrayBuffer()));
        }
      } catch (e) {
        end(0, why ? why.kind : 'unreachable', why ? why.msg : String((e && e.cause && e.cause.message) || (e && e.message) || e));
        return;
      }
      end(status, null, null);
    })();
    return 0;
  },

  cc_js_event: function (handle, req, type, data, len) {
    Module['ccEvent'](req, UTF8ToString(type), UTF8ToString(data, len));
  },

  cc_js_done: function (handle, req, ok, json, len) {
    Module['ccDone'](req, ok !== 0, UTF8ToString(json, len));
  },

  cc_js_generation: function (handle, project, generation) {
    Module['ccGeneration'](UTF8ToString(project), generation);
  },
});
