// tests/lib/upstream.mjs: a small real HTTP(S) server that stands in for the E2B cloud (control
// plane and envd) and answers whatever status a test wants, so that every row of the upstream
// status mapping (docs/protocol.md, "Upstream errors") meets a real server.
//
//   const up = await upstreamServer(http);                   // or (https, {key, cert})
//   E2B_API_URL = `${up.url}/ok`, E2B_SANDBOX_URL = `${up.url}/s403-json`
//   await up.close();
//
// The first path segment is the scenario; the rest is the request the client meant:
//   ok                   success: create/connect answer a sandbox "ifake1" whose envd is this
//                        server, /files and the RPCs answer empty successes
//   s<N>-json            HTTP N, E2B's JSON error {"code":N,"message":...} (the message names
//                        the path of a /files request, as envd's do)
//   s<N>-text / -empty   HTTP N with a plain-text body / no body
//   s<N>-connect-<code>  HTTP N, a Connect error {"code":"<code>","message":...} (envd RPCs)
//   s500-perm            envd's 500 for an OS permission failure ("... permission denied")
//   s502-gone / -port    the edge proxy's 502: "The sandbox was not found" / port not open
//   eos-<code>           HTTP 200 process stream that ends with a Connect error <code>
//   hang                 never answers (the connection stays open until close())
//   cut                  announces a body, sends half of it and drops the connection
export async function upstreamServer(mod, opts = {}) {
  const server = mod.createServer(opts, (req, res) => {
    const u = new URL(req.url, 'http://x');
    const [, scenario, ...rest] = u.pathname.split('/');
    const path = `/${rest.join('/')}`;
    const file = u.searchParams.get('path') ?? path;
    req.on('data', () => {});
    req.on('end', () => answer(req, res, scenario, path, file));
  });
  const sockets = new Set();
  server.on(opts.cert ? 'secureConnection' : 'connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = opts.cert ? 'https' : 'http';
  return {
    url: `${scheme}://127.0.0.1:${server.address().port}`,
    /** Stops the server and drops every connection (hanging ones too); may be called twice. */
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    },
  };
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/* One Connect envelope: flags byte, 4-byte big-endian length, JSON payload. */
function envelope(flags, obj) {
  const p = Buffer.from(JSON.stringify(obj));
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(p.length, 1);
  return Buffer.concat([h, p]);
}

const SANDBOX = { sandboxID: 'ifake1', templateID: 'base', clientID: '6532622b', envdVersion: '0.4.3', envdAccessToken: 'envd-token', domain: null };

function answer(req, res, scenario, path, file) {
  if (scenario === 'hang') return; /* never answered */
  if (scenario === 'cut') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 100 });
    res.write('{"sandboxID":"ifake1",');
    setImmediate(() => res.socket.destroy());
    return;
  }
  if (scenario === 'ok') {
    if (path === '/v2/sandboxes' || path === '/sandboxes') return json(res, 201, SANDBOX);
    if (/^\/sandboxes\/[^/]+\/connect$/.test(path)) return json(res, 200, SANDBOX);
    if (/^\/sandboxes\/[^/]+$/.test(path) && req.method === 'GET')
      return json(res, 200, { ...SANDBOX, alias: 'base', startedAt: new Date().toISOString(), endAt: new Date().toISOString(), cpuCount: 1, memoryMB: 512, state: 'running' });
    if (req.method === 'DELETE') return res.writeHead(204).end();
    if (path === '/files' && req.method === 'GET') return res.writeHead(200, { 'Content-Length': 2 }).end('hi');
    if (path === '/files') return json(res, 200, [{ name: 'f', type: 'file', path: file }]);
    return json(res, 200, {});
  }
  let m = /^eos-([a-z_]+)$/.exec(scenario);
  if (m) {
    res.writeHead(200, { 'Content-Type': 'application/connect+json' });
    return res.end(envelope(2, { error: { code: m[1], message: `${m[1]} for ${file}` } }));
  }
  m = /^s(\d{3})-(json|text|empty|perm|gone|port|connect-([a-z_]+))$/.exec(scenario);
  if (!m) return json(res, 599, { code: 599, message: `unknown scenario ${scenario}` });
  const status = Number(m[1]);
  switch (m[2]) {
    case 'json':
      return json(res, status, { code: status, message: status === 507 ? 'not enough disk space available'
        : `open ${file}: ${status === 403 ? 'permission denied' : 'upstream says no'}` });
    case 'text':
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      return res.end(status === 418 ? "I'm a teapot" : `${status} upstream says no`);
    case 'empty':
      return res.writeHead(status, { 'Content-Length': 0 }).end();
    case 'perm':
      return json(res, status, { code: status, message: `error opening file '${file}': open ${file}: permission denied` });
    case 'gone':
      return json(res, 502, { sandboxId: 'ifake1', message: 'The sandbox was not found', code: 502 });
    case 'port':
      return json(res, 502, { sandboxId: 'ifake1', message: 'The sandbox is running but port is not open', port: 49983, code: 502 });
    default:
      return json(res, status, { code: m[3], message: `${m[3]}: ${file}` });
  }
}
