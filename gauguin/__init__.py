"""gauguin: generative adversarial networks, from DCGAN to GauGAN."""
__version__ = "0.1.0"
