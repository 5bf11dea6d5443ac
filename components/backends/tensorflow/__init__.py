"""The TensorFlow branch: a Keras model trained and tuned inside a TFX pipeline's Trainer."""
