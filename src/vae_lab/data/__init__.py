"""Data: binarized images as LightningDataModules (`BinarizedImages`), from MNIST or from your own files."""

from vae_lab.data.datamodule import BinarizedImages
from vae_lab.data.images import ImageFiles
from vae_lab.data.mnist import BinarizedMNIST

__all__ = ["BinarizedImages", "BinarizedMNIST", "ImageFiles"]
