#!/usr/bin/node
// A prover written for the Node runtime: a worker thread, crypto, timers, and its answer in
// /job/out.
const fs = require('fs');
const crypto = require('crypto');
const { Worker, isMainThread, parentPort } = require('worker_threads');

if (isMainThread) {
  const data = fs.readFileSync('/job/in/statement');
  const worker = new Worker(__filename);
  worker.on('message', (salt) => {
    setTimeout(() => {
      const statement = crypto.createHash('sha256').update(data).digest('hex');
      fs.writeFileSync('/job/out/proof', JSON.stringify({ statement, salt: salt.length }));
      worker.terminate();
    }, 10);
  });
} else {
  parentPort.postMessage(crypto.randomBytes(16).toString('hex'));
}
