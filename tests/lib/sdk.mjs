// Helpers for tests that drive sandboxes with the official e2b SDK.

/** Points the SDK in this process at a sandboxd of tests/lib/sandboxd.mjs: its API key and
 *  URLs, and neither debug mode nor another domain left over from the environment. */
export function useSandboxd(sd) {
  delete process.env.E2B_DEBUG;
  delete process.env.E2B_DOMAIN;
  Object.assign(process.env, sd.env());
}

/** Runs cmd in sbx and returns {exitCode, stdout, stderr} whether it fails or not (the SDK
 * throws CommandExitError, of any SDK version, for a non-zero exit: that is returned). */
export async function run(sbx, cmd, opts = {}) {
  try {
    return await sbx.commands.run(cmd, { timeoutMs: 60_000, ...opts });
  } catch (e) {
    if (typeof e.exitCode === 'number') return e;
    throw e;
  }
}
