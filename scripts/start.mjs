// `npm start`: build when the sources changed since the last build, then run
// the production server (`next start`) in the foreground.
//   PORT  port to listen on (default 3000)
//   HOST  interface to bind (default: all interfaces)
import { spawn } from "node:child_process";
import net from "node:net";
import { constants } from "node:os";
import path from "node:path";
import { buildIfNeeded, projectRoot } from "./build-if-needed.mjs";

const port = process.env.PORT?.trim() || "3000";
const host = process.env.HOST?.trim() || undefined;

if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
  console.error(`PORT must be a port number, got "${port}".`);
  process.exit(1);
}

if (!(await buildIfNeeded())) {
  console.error("Concord was not started because the build failed.");
  process.exit(1);
}

const args = ["start", "-p", port];
if (host) args.push("-H", host);

// The child stays in our process group: a supervisor that kills the group
// (Playwright's webServer, a terminal's Ctrl-C) reaches next-server as well.
const child = spawn(path.join(projectRoot, "node_modules", ".bin", "next"), args, {
  cwd: projectRoot,
  stdio: "inherit",
});

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

child.on("error", (error) => {
  console.error(`Could not run next start: ${error.message}`);
  process.exit(1);
});

child.on("exit", (code, signal) => {
  if (code !== null) process.exit(code);
  process.exit(128 + (signal ? (constants.signals[signal] ?? 0) : 0));
});

// Announce the address once the server accepts connections.
const probeHost = !host || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
const shownHost = !host || host === "0.0.0.0" || host === "::" ? "localhost" : host;
const shownAddress = `http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${port}`;

function probe() {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const socket = net.connect({ host: probeHost, port: Number(port) });
  socket.once("connect", () => {
    socket.destroy();
    console.log(`Concord listening on ${shownAddress}`);
  });
  socket.once("error", () => {
    socket.destroy();
    setTimeout(probe, 200).unref();
  });
}
probe();
