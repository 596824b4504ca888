import math

import torch

from vae_lab.objectives import monte_carlo_elbo, reparameterize


def test_single_sample_elbo_matches_a_hand_computation() -> None:
    # One example, 2 pixels, 1 latent dim: every term written out by hand.
    x = torch.tensor([[1.0, 0.0]])
    logits = torch.tensor([[0.0, 2.0]])
    mean, logvar = torch.tensor([[0.5]]), torch.tensor([[math.log(0.25)]])
    z = reparameterize(mean, logvar, torch.tensor([[2.0]]))  # 0.5 + 0.5 * 2 = 1.5
    assert torch.allclose(z, torch.tensor([[1.5]]))

    log_px = math.log(0.5) + math.log(1.0 - 1.0 / (1.0 + math.exp(-2.0)))
    log_pz = -0.5 * (1.5**2 + math.log(2 * math.pi))
    log_qz = -0.5 * ((1.5 - 0.5) ** 2 / 0.25 + math.log(0.25) + math.log(2 * math.pi))

    terms = monte_carlo_elbo(x, logits, z, mean, logvar)
    assert math.isclose(terms.recon.item(), log_px, rel_tol=1e-6)
    assert math.isclose(terms.kl.item(), log_qz - log_pz, rel_tol=1e-6)
    assert math.isclose(terms.elbo.item(), log_px + log_pz - log_qz, rel_tol=1e-6)


def test_elbo_sums_over_pixels_and_latents_per_example() -> None:
    x = torch.ones(3, 1, 28, 28)
    logits = torch.zeros(3, 1, 28, 28)
    zeros = torch.zeros(3, 4)
    terms = monte_carlo_elbo(x, logits, zeros, zeros, zeros)
    assert terms.elbo.shape == (3,)
    assert torch.allclose(terms.recon, torch.full((3,), 784 * math.log(0.5)))
    assert torch.allclose(terms.kl, torch.zeros(3))  # q == p at z = 0
