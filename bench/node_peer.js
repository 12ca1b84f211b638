// One benchmark run of a node.js peer: `node bench/node_peer.js net|connman WORKLOAD PORT AMOUNT`.
// The same workloads and logic as bench/peers.py; prints one JSON object. connman 1.0 is installed from
// the npm registry by bench/run.py into bench/.node (git-ignored), never committed. `cpu_us` is the
// process's CPU time (process.cpuUsage(), user + system) per round trip / message / MB.
'use strict';
const net = require('net');
const path = require('path');

const [peer, kind, portText, amountText] = process.argv.slice(2);
const port = Number(portText), amount = Number(amountText);
const MESSAGE = Buffer.alloc(64, 'm'), WINDOW = 100;
let received = 0, completed = 0, sent = 0, started = 0n, elapsed = 0, send = null, finished = false, cpu = null;

function begin(write) {
  send = write;
  started = process.hrtime.bigint();
  cpu = process.cpuUsage();
  if (kind === 'w1') { sent = 1; send(MESSAGE); }
  else if (kind === 'w2') { sent = Math.min(WINDOW, amount); send(Buffer.concat(Array(sent).fill(MESSAGE))); }
  else send(Buffer.from('go'));
}

function data(buffer) {
  received += buffer.length;
  if (kind === 'w3') { if (received >= amount) finish(); return; }
  const now = Math.floor(received / 64);
  if (now === completed) return;
  const fresh = now - completed; completed = now;
  if (completed >= amount) { finish(); return; }
  const more = Math.min(fresh, amount - sent);
  if (more) { sent += more; send(more > 1 ? Buffer.concat(Array(more).fill(MESSAGE)) : MESSAGE); }
}

function finish() {
  if (finished) return;
  finished = true;
  elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu), cpuSeconds = (used.user + used.system) / 1e6;  // the client's CPU
  const value = kind === 'w1' ? amount / elapsed : kind === 'w2' ? amount / elapsed : received / elapsed / 1e6;
  const unit = kind === 'w1' ? 'round trips/s' : kind === 'w2' ? 'msgs/s' : 'MB/s';
  const cpu_us = kind === 'w3' ? cpuSeconds / (received / 1e6) * 1e6 : cpuSeconds / amount * 1e6;
  console.log(JSON.stringify({ value, unit, cpu_us }));
  process.exit(0);
}

if (peer === 'net') {
  const sock = net.connect(port, '127.0.0.1', () => { sock.setNoDelay(true); begin((b) => sock.write(b)); });
  sock.on('data', data);
} else if (peer === 'connman') {
  const cm = require(path.join(__dirname, '.node', 'node_modules', 'connman'));
  cm.connect(port, '127.0.0.1', (sock) => { sock.setNoDelay(true); begin((b) => sock.write(b)); }, data, () => {});
} else {
  console.error(`unknown peer ${peer}`);
  process.exit(2);
}
