"""Discriminators of GAN tokenizers and their loss helpers."""
from .patchgan import (PatchGANDiscriminator, adaptive_weight, adversarial_terms,  # noqa: F401
                       discriminator_loss, generator_adversarial_loss, hinge_d_loss,
                       vanilla_d_loss)
