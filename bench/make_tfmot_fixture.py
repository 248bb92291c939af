"""Build an int8 .tflite the way someone else's pipeline would: Keras + tfmot + the TFLite converter.

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 \\
        tensorflow-model-optimization==0.8.1
    /tmp/tfenv/bin/python bench/make_tfmot_fixture.py --sparsity 0.75 --out tests/fixtures/keras_tfmot_lenet_75.tflite

TensorFlow is not a dependency of powerprune (it is large and only this fixture needs it); the
resulting file is committed so the tests can check that sparsity from other tools pays off too.
LeNet-5 like ours, trained briefly, pruned with tfmot's prune_low_magnitude (constant per-layer
sparsity), stripped, then full-integer quantized with int8 input and output.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

# powerprune.data needs only numpy; load it by path so this script runs without torch installed
_spec = importlib.util.spec_from_file_location("pp_data", Path(__file__).parents[1] / "powerprune" / "data.py")
pp_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pp_data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="tests/fixtures/keras_tfmot_lenet_75.tflite")
    args = ap.parse_args()

    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    tf.random.set_seed(0)
    train = pp_data.load_fashion_mnist("train")
    x = train.images.astype(np.float32) / 255.0
    y = train.labels
    model = keras.Sequential([
        keras.layers.Input((28, 28, 1)),
        keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="relu"),
        keras.layers.Dense(84, activation="relu"),
        keras.layers.Dense(10),
    ])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(2e-3), loss, metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=2)

    schedule = tfmot.sparsity.keras.ConstantSparsity(args.sparsity, begin_step=0, frequency=100)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(keras.optimizers.Adam(5e-4), loss, metrics=["accuracy"])
    pruned.fit(x, y, batch_size=64, epochs=2, verbose=2, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    final = tfmot.sparsity.keras.strip_pruning(pruned)

    def representative():
        for i in range(300):
            yield [x[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(final)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
