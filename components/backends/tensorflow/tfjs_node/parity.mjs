// Runs a TensorFlow.js graph model (tensorflowjs_converter's model.json and weight
// shards) on float32 matrices with the pure-JavaScript @tensorflow/tfjs (CPU
// backend), for bakeoff's export parity check (components/backends/tensorflow/tfjs.py).
//
//   node parity.mjs MODEL_DIR
//
// loads the model once, then answers one request per line on stdin:
//
//   INPUT.f32 <tab> ROWS <tab> WIDTH <tab> OUTPUT.f32
//
// INPUT.f32 holds ROWS x WIDTH little-endian float32 values, row-major; OUTPUT.f32
// receives the model's one output the same way, and OUTPUT.f32.json its shape and
// the runtime that computed it. Each request is answered with one line on stdout,
// `ok` or `error <what>`. A model that does not load ends the process with one line
// on stderr and exit status 2. The pure-JS package reads no file:// paths, so the
// model is read with fs and loaded from memory (tf.io.fromMemory).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';

import * as tf from '@tensorflow/tfjs';

const oneLine = (message) => String(message).replace(/\s*\n\s*/g, ' ');

function fail(message) {
  process.stderr.write(`tfjs parity: ${oneLine(message)}\n`);
  process.exit(2);
}

const [modelDir] = process.argv.slice(2);
if (!modelDir) {
  fail('usage: node parity.mjs MODEL_DIR (then requests on stdin)');
}

async function load() {
  const modelJSON = JSON.parse(await readFile(path.join(modelDir, 'model.json'), 'utf8'));
  if (!modelJSON.modelTopology || !Array.isArray(modelJSON.weightsManifest)) {
    throw new Error(`${path.join(modelDir, 'model.json')}: expected a TF.js graph model (modelTopology, weightsManifest)`);
  }
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
    const shards = [];
    for (const group of manifest) {
      for (const shard of group.paths) {
        const bytes = await readFile(path.join(modelDir, shard));
        shards.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      }
    }
    return [tf.io.getWeightSpecs(manifest), tf.io.concatenateArrayBuffers(shards)];
  });
  await tf.setBackend('cpu');
  await tf.ready();
  return tf.loadGraphModel(tf.io.fromMemory(artifacts));
}

async function answer(model, request) {
  const [inputPath, rowsText, widthText, outputPath] = request.split('\t');
  const rows = Number(rowsText);
  const width = Number(widthText);
  if (!outputPath || !Number.isInteger(rows) || rows < 0 || !Number.isInteger(width) || width < 1) {
    throw new Error(`a request is INPUT ROWS WIDTH OUTPUT with whole ROWS and WIDTH, found ${JSON.stringify(request)}`);
  }
  const bytes = await readFile(inputPath);
  if (bytes.byteLength !== rows * width * 4) {
    throw new Error(`${inputPath} holds ${bytes.byteLength} bytes; ${rows} x ${width} float32 need ${rows * width * 4}`);
  }
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const input = tf.tensor2d(values, [rows, width], 'float32');
  let output = await model.executeAsync(input);
  if (Array.isArray(output)) {
    if (output.length !== 1) throw new Error(`the model has ${output.length} outputs; expected one`);
    [output] = output;
  } else if (!(output instanceof tf.Tensor)) {
    const names = Object.keys(output);
    if (names.length !== 1) throw new Error(`the model has outputs ${names.join(', ')}; expected one`);
    output = output[names[0]];
  }
  const result = await output.data();
  await writeFile(outputPath, Buffer.from(result.buffer, result.byteOffset, result.byteLength));
  await writeFile(
    `${outputPath}.json`,
    JSON.stringify({ shape: output.shape, dtype: output.dtype, backend: tf.getBackend(), tfjs: tf.version.tfjs }),
  );
  tf.dispose([input, output]);
}

async function main() {
  let model;
  try {
    model = await load();
  } catch (error) {
    // One line a user can act on, not a stack trace from inside TF.js.
    fail(`${modelDir}: ${error && error.message ? error.message : error}`);
  }
  for await (const request of readline.createInterface({ input: process.stdin })) {
    try {
      await answer(model, request);
      process.stdout.write('ok\n');
    } catch (error) {
      process.stdout.write(`error ${oneLine(error && error.message ? error.message : error)}\n`);
    }
  }
}

main();
