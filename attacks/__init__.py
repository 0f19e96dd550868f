"""Adversarial examples: the simple generator, standard baseline attacks, robust training."""
