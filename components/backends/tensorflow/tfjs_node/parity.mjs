// Runs a TensorFlow.js graph model (tensorflowjs_converter's model.json and weight
// shards) on a float32 matrix with the pure-JavaScript @tensorflow/tfjs (CPU
// backend), for bakeoff's export parity check (components/backends/tensorflow/tfjs.py).
//
//   node parity.mjs MODEL_DIR INPUT.f32 ROWS WIDTH OUTPUT.f32
//
// INPUT.f32 holds ROWS x WIDTH little-endian float32 values, row-major; OUTPUT.f32
// receives the model's one output the same way, and OUTPUT.f32.json its shape and
// the runtime that computed it. The pure-JS package reads no file:// paths, so the
// model is read with fs and loaded from memory (tf.io.fromMemory).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs';

function fail(message) {
  process.stderr.write(`tfjs parity: ${String(message).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(2);
}

const [modelDir, inputPath, rowsText, widthText, outputPath] = process.argv.slice(2);
if (!outputPath) {
  fail('usage: node parity.mjs MODEL_DIR INPUT.f32 ROWS WIDTH OUTPUT.f32');
}
const rows = Number(rowsText);
const width = Number(widthText);
if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(width) || width < 1) {
  fail(`ROWS and WIDTH must be whole numbers, found ${rowsText} and ${widthText}`);
}

async function main() {
  const modelJSON = JSON.parse(await readFile(path.join(modelDir, 'model.json'), 'utf8'));
  if (!modelJSON.modelTopology || !Array.isArray(modelJSON.weightsManifest)) {
    fail(`${path.join(modelDir, 'model.json')}: expected a TF.js graph model (modelTopology, weightsManifest)`);
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
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));

  const bytes = await readFile(inputPath);
  if (bytes.byteLength !== rows * width * 4) {
    fail(`${inputPath} holds ${bytes.byteLength} bytes; ${rows} x ${width} float32 need ${rows * width * 4}`);
  }
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const input = tf.tensor2d(values, [rows, width], 'float32');
  let output = await model.executeAsync(input);
  if (Array.isArray(output)) {
    if (output.length !== 1) fail(`the model has ${output.length} outputs; expected one`);
    [output] = output;
  } else if (!(output instanceof tf.Tensor)) {
    const names = Object.keys(output);
    if (names.length !== 1) fail(`the model has outputs ${names.join(', ')}; expected one`);
    output = output[names[0]];
  }
  const result = await output.data();
  await writeFile(outputPath, Buffer.from(result.buffer, result.byteOffset, result.byteLength));
  await writeFile(
    `${outputPath}.json`,
    JSON.stringify({ shape: output.shape, dtype: output.dtype, backend: tf.getBackend(), tfjs: tf.version.tfjs }),
  );
}

// One line a user can act on, not a stack trace from inside TF.js.
main().catch((error) => fail(`${modelDir}: ${error && error.message ? error.message : error}`));
