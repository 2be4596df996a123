// tests/lib/e2b-sdk-alias.mjs: runs a test file that imports 'e2b' against another pinned
// version of the official SDK, unchanged.  `node --import ./lib/e2b-sdk-alias.mjs --test ...`
// with CC_E2B_SDK=<package name in tests/package.json> (e.g. e2b-2.51, an npm alias of
// e2b@2.51.0) resolves every `import ... from 'e2b'` to that package instead.
import { register } from 'node:module';

if (process.env.CC_E2B_SDK) {
  register(
    `data:text/javascript,${encodeURIComponent(`
      const target = ${JSON.stringify(process.env.CC_E2B_SDK)};
      export async function resolve(specifier, context, next) {
        return next(specifier === 'e2b' ? target : specifier, context);
      }`)}`,
    import.meta.url,
  );
}
