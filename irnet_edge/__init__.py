"""irnet-edge: train IR-Net binary neural networks and deploy them as bit-exact C."""

__version__ = "0.2.0"
