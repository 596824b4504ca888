"""The TensorFlow tutorial "Convolutional Variational Autoencoder" (tensorflow.org/tutorials/generative/cvae), TF2.

Its code as written (model, `log_normal_pdf`, `compute_loss`, `@tf.function train_step`, Adam(1e-4), the tf.data
pipeline), with four changes for a benchmark: the images come from the IDX files vae_lab reads (`<data-dir>/MNIST/raw`,
parsed with numpy by mnist_arrays.py, binarized `pixels / 255 > 0.5` as the tutorial's `preprocess_images` does); the
latent size and batch are the seed recipe's (50 and 100; the notebook uses 2 and 32); the epoch is timed after
`--warmup-steps` steps (tracing `train_step` is the first one); tf.data autotuning is off. The last line of stdout is
one JSON object with the fields of `train_speed.Run`. `make bench` runs it in its own venv (requirements-tf.txt):

    benchmarks/.venv-tf/bin/python benchmarks/tf_tutorial.py --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before importing TF: no start-up banner on stderr

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from mnist_arrays import read_idx_images  # noqa: E402

STEPS_PER_EPOCH, BATCH, LATENT = 600, 100, 50


def preprocess_images(images: np.ndarray) -> np.ndarray:  # the tutorial's
    images = images.reshape((images.shape[0], 28, 28, 1)) / 255.
    return np.where(images > .5, 1.0, 0.0).astype('float32')


class CVAE(tf.keras.Model):
    """Convolutional variational autoencoder."""

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = tf.keras.Sequential(
            [
                tf.keras.layers.InputLayer(shape=(28, 28, 1)),  # Keras 3 spelling of input_shape=
                tf.keras.layers.Conv2D(filters=32, kernel_size=3, strides=(2, 2), activation='relu'),
                tf.keras.layers.Conv2D(filters=64, kernel_size=3, strides=(2, 2), activation='relu'),
                tf.keras.layers.Flatten(),
                # No activation
                tf.keras.layers.Dense(latent_dim + latent_dim),
            ]
        )
        self.decoder = tf.keras.Sequential(
            [
                tf.keras.layers.InputLayer(shape=(latent_dim,)),
                tf.keras.layers.Dense(units=7 * 7 * 32, activation=tf.nn.relu),
                tf.keras.layers.Reshape(target_shape=(7, 7, 32)),
                tf.keras.layers.Conv2DTranspose(filters=64, kernel_size=3, strides=2, padding='same',
                                                activation='relu'),
                tf.keras.layers.Conv2DTranspose(filters=32, kernel_size=3, strides=2, padding='same',
                                                activation='relu'),
                # No activation
                tf.keras.layers.Conv2DTranspose(filters=1, kernel_size=3, strides=1, padding='same'),
            ]
        )

    def encode(self, x):
        mean, logvar = tf.split(self.encoder(x), num_or_size_splits=2, axis=1)
        return mean, logvar

    def reparameterize(self, mean, logvar):
        eps = tf.random.normal(shape=mean.shape)
        return eps * tf.exp(logvar * .5) + mean

    def decode(self, z, apply_sigmoid=False):
        logits = self.decoder(z)
        if apply_sigmoid:
            probs = tf.sigmoid(logits)
            return probs
        return logits


def log_normal_pdf(sample, mean, logvar, raxis=1):
    log2pi = tf.math.log(2. * np.pi)
    return tf.reduce_sum(-.5 * ((sample - mean) ** 2. * tf.exp(-logvar) + logvar + log2pi), axis=raxis)


def compute_loss(model, x):
    mean, logvar = model.encode(x)
    z = model.reparameterize(mean, logvar)
    x_logit = model.decode(z)
    cross_ent = tf.nn.sigmoid_cross_entropy_with_logits(logits=x_logit, labels=x)
    logpx_z = -tf.reduce_sum(cross_ent, axis=[1, 2, 3])
    logpz = log_normal_pdf(z, 0., 0.)
    logqz_x = log_normal_pdf(z, mean, logvar)
    return -tf.reduce_mean(logpx_z + logpz - logqz_x)


@tf.function
def train_step(model, x, optimizer):
    """Executes one training step and returns the loss."""
    with tf.GradientTape() as tape:
        loss = compute_loss(model, x)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))  # noqa: B905 (as written)


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    # Autotune re-sizes buffers and thread pools while it runs; off, every timed step sees the same pipeline.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def peak_rss_mb() -> float:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(data_dir: Path, seed: int, steps: int, warmup_steps: int) -> dict[str, float]:
    fit_start = time.perf_counter()
    raw = data_dir / "MNIST" / "raw"
    train_images = preprocess_images(read_idx_images(raw / "train-images-idx3-ubyte"))
    test_images = preprocess_images(read_idx_images(raw / "t10k-images-idx3-ubyte"))
    tf.random.set_seed(seed)  # weights, the ELBO's noise and the shuffle order
    train_size, test_size = len(train_images), len(test_images)
    train_dataset = without_autotune(tf.data.Dataset.from_tensor_slices(train_images)
                                     .shuffle(train_size).batch(BATCH))
    test_dataset = without_autotune(tf.data.Dataset.from_tensor_slices(test_images)
                                    .shuffle(test_size).batch(BATCH))
    model = CVAE(LATENT)
    optimizer = tf.keras.optimizers.Adam(1e-4)

    images, start = 0, time.perf_counter()
    for step, train_x in enumerate(train_dataset):
        if step == steps:
            break
        train_step(model, train_x, optimizer)
        if step + 1 == warmup_steps:
            warm, cpu_warm = time.perf_counter(), time.process_time()
        elif step >= warmup_steps:
            images += len(train_x)
    # train_step's result is never read, as in the tutorial; reading one weight waits for the last update.
    float(model.trainable_variables[0][0, 0, 0, 0])
    end, cpu_end = time.perf_counter(), time.process_time()
    loss = tf.keras.metrics.Mean()
    for test_x in test_dataset:
        loss(compute_loss(model, test_x))
    elbo = -loss.result()
    val_s = time.perf_counter() - end
    fit_s = time.perf_counter() - fit_start
    return {"images_per_s": images / (end - warm), "images_per_cpu_s": images / (cpu_end - cpu_warm),
            "warmup_s": warm - start, "val_s": val_s, "other_s": fit_s - (end - start) - val_s,
            "peak_rss_mb": peak_rss_mb(), "val_elbo": float(elbo)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS_PER_EPOCH, help="training steps (default: one epoch)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of the rate (default 5)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    parser.add_argument("--threads", type=int, default=None, help="TF intra-op threads; default: TF's own")
    args = parser.parse_args(argv)
    if args.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    print(json.dumps(run(args.data_dir, args.seed, args.steps, args.warmup_steps)), flush=True)


if __name__ == "__main__":
    main()
