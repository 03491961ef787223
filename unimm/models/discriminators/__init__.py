"""Discriminators of GAN tokenizers and their loss helpers."""
from .patchgan import (PatchGANDiscriminator, adaptive_weight, discriminator_loss,  # noqa: F401
                       generator_adversarial_loss, hinge_d_loss, vanilla_d_loss)
