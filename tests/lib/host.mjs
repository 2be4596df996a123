// tests/lib/host.mjs: an HTTP request to a server on 127.0.0.1 with a Host header of the
// test's choosing, which fetch cannot set (and Node does not resolve *.localhost by itself):
// how tests reach sandboxd's port proxy and envd by the `<port>-<id>.<domain>` host form.
import http from 'node:http';

/** Sends method path to 127.0.0.1:port with Host: host; resolves {status, body (utf8)}. */
export function requestWithHost(port, host, path = '/', { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method, headers: { Host: host, ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
