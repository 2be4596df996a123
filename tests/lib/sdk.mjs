// Helpers for tests that drive sandboxes with the official e2b SDK.

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
