"""Data: images as LightningDataModules (`ImageData`), from MNIST, Fashion-MNIST, CIFAR-10 or your own files."""

from vae_lab.data.datamodule import ImageData
from vae_lab.data.images import ImageFiles
from vae_lab.data.mnist import BinarizedMNIST
from vae_lab.data.torchvision_sets import CIFAR10, FashionMNIST

__all__ = ["CIFAR10", "BinarizedMNIST", "FashionMNIST", "ImageData", "ImageFiles"]
