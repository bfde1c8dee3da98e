// Starts the fake E2B (server.mjs) as a child process and waits for its {"port":N} line.
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";

const HERE = path.dirname(new URL(import.meta.url).pathname);

export async function startFake(extraArgs = []) {
  const child = spawn(process.execPath, [path.join(HERE, "server.mjs"), "--port", "0", ...extraArgs],
    { stdio: ["ignore", "pipe", "inherit"] });
  const rl = readline.createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the fake exited (${code}) before listening`)));
    rl.once("line", (line) => resolve(JSON.parse(line).port));
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    port, base, child,
    async stop() {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await done;
    },
  };
}
