// web/js/templates.js: the project templates offered by the setup panel. Each is the files
// it writes, an optional install command (run by setupProject, its output streamed), the
// file to open, a command to suggest in the command box, and an optional dev server to offer.
// The installs work without internet: the Python one makes a virtual environment (Debian's
// Python refuses installs outside one) and installs requirements.txt, which lists nothing yet;
// the Node one has no dependencies, so npm writes package-lock.json without the registry.

const PY_MAIN = `# main.py: run it with the command box (Enter): .venv/bin/python main.py
import platform


def main():
    print(f"Hello from Python {platform.python_version()} in the sandbox")


if __name__ == "__main__":
    main()
`;

const PY_REQUIREMENTS = `# One package per line, e.g. requests==2.32.3; then run:
#   .venv/bin/pip install -r requirements.txt
`;

const NODE_PACKAGE = `{
  "name": "app",
  "version": "1.0.0",
  "private": true,
  "description": "A tiny Node web server",
  "scripts": {
    "start": "node server.js"
  }
}
`;

const NODE_SERVER = `// server.js: a tiny web server (no dependencies). The dev server panel runs it:
// node server.js (port 3000, or $PORT).
const http = require('node:http');

const port = Number(process.env.PORT) || 3000;

http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(\`<!doctype html>
<title>Hello</title>
<h1>Hello from Node \${process.version}</h1>
<p>You asked for <code>\${req.url.replace(/[<>&"]/g, '')}</code>. Edit server.js, then restart the dev server.</p>
\`);
}).listen(port, () => console.log(\`listening on port \${port}\`));
`;

export const TEMPLATES = {
  empty: {
    label: 'Empty',
    files: [],
  },
  python: {
    label: 'Python',
    files: [
      { path: 'main.py', content: PY_MAIN },
      { path: 'requirements.txt', content: PY_REQUIREMENTS },
    ],
    install: 'python3 -m venv .venv && .venv/bin/pip install --disable-pip-version-check -r requirements.txt && echo "Python environment ready in .venv"',
    open: 'main.py',
    run: '.venv/bin/python main.py',
  },
  node: {
    label: 'Node + dev server',
    files: [
      { path: 'package.json', content: NODE_PACKAGE },
      { path: 'server.js', content: NODE_SERVER },
    ],
    install: 'npm install --no-audit --no-fund --no-update-notifier',
    open: 'server.js',
    run: 'node --version && npm --version',
    dev: { port: 3000, cmd: 'node server.js' },
  },
};
