// For bench/e2b.py: what `sbox run -p e2b -- echo hi` does, through the official SDK (create, run, kill), so the
// two can be timed side by side. Reads E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL like the SDK always does.
import { Sandbox } from "e2b";

const sandbox = await Sandbox.create();
try {
  const result = await sandbox.commands.run("echo hi");
  process.stdout.write(result.stdout);
} finally {
  await sandbox.kill();
}
