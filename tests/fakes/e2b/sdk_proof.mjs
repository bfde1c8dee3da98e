// Proof that the fake is E2B: the official SDK (npm e2b, pinned in ../package.json) runs against it.
// Exit 0 only when every step passes; each step's name is printed.
import assert from "node:assert/strict";
import { startFake } from "./start_fake.mjs";

const fake = await startFake();
process.env.E2B_API_KEY = "e2b_test_key";
process.env.E2B_API_URL = fake.base;
process.env.E2B_SANDBOX_URL = fake.base;
const { Sandbox, CommandExitError, TimeoutError, SandboxError, NotFoundError } = await import("e2b");

let failures = 0;
async function step(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e?.stack || e}`);
  }
}

let sbx;
const tag = `proof-${process.pid}`;
await step("Sandbox.create with metadata and envs", async () => {
  sbx = await Sandbox.create({ metadata: { suite: tag, n: "1" }, envs: { GREETING: "hello from env" }, timeoutMs: 120_000 });
  assert.match(sbx.sandboxId, /^[a-z0-9]{20}$/);
});

await step("commands.run: stdout, stderr, env, cwd is the user's home", async () => {
  const out = [];
  const r = await sbx.commands.run('echo "$GREETING"; echo to-stderr >&2; pwd; echo "$USER"',
    { onStdout: (d) => out.push(d) });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, "hello from env\n/home/user\nuser\n");
  assert.equal(r.stderr, "to-stderr\n");
  assert.ok(out.join("").includes("hello from env"));
});

await step("commands.run as root: USER and HOME", async () => {
  const r = await sbx.commands.run('echo "$USER $HOME"; pwd', { user: "root" });
  assert.equal(r.stdout, "root /root\n/root\n");
});

await step("non-zero exit: CommandExitError with the exit code and stderr", async () => {
  await assert.rejects(sbx.commands.run("echo bad >&2; exit 7"), (e) => {
    assert.ok(e instanceof CommandExitError, `got ${e}`);
    assert.equal(e.exitCode, 7);
    assert.equal(e.stderr, "bad\n");
    return true;
  });
});

await step("stdin: a background command fed with sendStdin, then closeStdin", async () => {
  const h = await sbx.commands.run("cat | tr a-z A-Z", { background: true, stdin: true });
  await sbx.commands.sendStdin(h.pid, "hello ");
  await sbx.commands.sendStdin(h.pid, "stdin\n");
  await sbx.commands.closeStdin(h.pid);
  const r = await h.wait();
  assert.equal(r.stdout, "HELLO STDIN\n");
});

await step("files.write and files.read: text, bytes, nested path; processes see the same files", async () => {
  await sbx.files.write("/home/user/deep/er/note.txt", "text content\n");
  assert.equal(await sbx.files.read("/home/user/deep/er/note.txt"), "text content\n");
  const bytes = new Uint8Array([0, 1, 2, 250, 255]);
  await sbx.files.write("rel/blob.bin", bytes); // relative: the user's home
  const back = await sbx.files.read("/home/user/rel/blob.bin", { format: "bytes" });
  assert.deepEqual([...back], [...bytes]);
  const r = await sbx.commands.run("cat deep/er/note.txt; od -An -tu1 rel/blob.bin | tr -s ' '");
  assert.equal(r.stdout, "text content\n 0 1 2 250 255\n");
  await sbx.commands.run("echo from-process > /tmp/made-by-process");
  assert.equal(await sbx.files.read("/tmp/made-by-process"), "from-process\n");
});

await step("files.list and makeDir", async () => {
  assert.equal(await sbx.files.makeDir("/home/user/newdir/sub"), true);
  assert.equal(await sbx.files.makeDir("/home/user/newdir/sub"), false); // exists
  await sbx.files.write("/home/user/newdir/f.txt", "x");
  const list = await sbx.files.list("/home/user/newdir");
  const names = list.map((e) => `${e.name}:${e.type}`).sort();
  assert.deepEqual(names, ["f.txt:file", "sub:dir"]);
  const f = list.find((e) => e.name === "f.txt");
  assert.equal(f.path, "/home/user/newdir/f.txt");
  assert.equal(f.size, 1);
  assert.equal(await sbx.files.exists("/home/user/newdir/nope"), false);
  await assert.rejects(sbx.files.read("/home/user/nope.txt"), (e) => e instanceof NotFoundError);
});

await step("Sandbox.list with a metadata filter", async () => {
  const other = await Sandbox.create({ metadata: { suite: "someone-else" } });
  const items = await Sandbox.list({ query: { metadata: { suite: tag } } }).nextItems();
  assert.deepEqual(items.map((s) => s.sandboxId), [sbx.sandboxId]);
  assert.equal(items[0].metadata.n, "1");
  assert.equal(items[0].state, "running");
  await other.kill();
});

await step("PTY: a terminal whose resize shows in stty size", async () => {
  let text = "";
  const dec = new TextDecoder();
  const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { text += dec.decode(d); } });
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode("stty size\n"));
  await waitFor(() => text.includes("24 80"), "24 80 in the terminal");
  await sbx.pty.resize(pty.pid, { cols: 100, rows: 30 });
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode("stty size; exit\n"));
  await waitFor(() => text.includes("30 100"), "30 100 in the terminal");
  const r = await pty.wait();
  assert.equal(r.exitCode, 0);
});

await step("pause, then connect resumes", async () => {
  await sbx.files.write("/home/user/kept.txt", "kept");
  await sbx.pause();
  const info = await Sandbox.getInfo(sbx.sandboxId);
  assert.equal(info.state, "paused");
  const again = await Sandbox.connect(sbx.sandboxId);
  assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, "running");
  assert.equal(await again.files.read("/home/user/kept.txt"), "kept");
  sbx = again;
});

await step("command timeout: TimeoutError, and the process is killed", async () => {
  await assert.rejects(sbx.commands.run("sleep 30", { timeoutMs: 1000 }), (e) => {
    assert.ok(e instanceof TimeoutError, `got ${e}`);
    return true;
  });
  const procs = await sbx.commands.list();
  await waitFor(async () => !(await sbx.commands.list()).some((p) => p.args.join(" ").includes("sleep 30")), "sleep gone");
  assert.ok(Array.isArray(procs));
});

await step("kill: the sandbox is gone, and its next call fails as the SDK reports it", async () => {
  const h = await sbx.commands.run("sleep 100", { background: true });
  assert.ok(h.pid > 0);
  await sbx.kill();
  assert.equal(await sbx.isRunning(), false);
  await assert.rejects(sbx.commands.run("echo hi"), (e) => {
    assert.ok(e instanceof SandboxError || e instanceof TimeoutError, `got ${e}`);
    assert.match(String(e.message), /not found|timeout|sandbox/i);
    return true;
  });
  await assert.rejects(Sandbox.connect(sbx.sandboxId), (e) => /not found/i.test(e.message));
});

await step("every request the SDK sent was valid against the spec", async () => {
  const reqs = await (await fetch(`${fake.base}/_fake/requests`)).json();
  const bad = reqs.filter((r) => !r.valid);
  assert.deepEqual(bad.map((r) => `${r.method} ${r.path}: ${r.problem}`), []);
  assert.ok(reqs.length > 10);
});

async function waitFor(cond, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

await fake.stop();
console.log(failures ? `${failures} step(s) failed` : "all steps passed");
process.exit(failures ? 1 : 0);
