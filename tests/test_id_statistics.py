"""The id statistics of ReconstructionEvaluator (`codebook_usage`) on hand-made ids."""
import math

import pytest
import torch

from unimm.evaluation.recon import codebook_usage


def test_uniform_ids_have_log_vocab_entropy():
    ids = torch.arange(16).repeat(8).view(8, 16)  # every id once per image, same position
    out = codebook_usage(ids, 32)
    assert out['usage_global'] == 0.5 and out['distinct_ids'] == 16
    assert out['id_entropy'] == pytest.approx(math.log(16))
    assert out['position_entropy'] == pytest.approx(0.0)  # each position always holds one id


def test_position_entropy_counts_variation_across_images():
    ids = torch.tensor([[0, 5], [1, 5], [2, 5], [3, 5]])  # position 0: 4 ids, position 1: one
    out = codebook_usage(ids, 8)
    assert out['position_entropy'] == pytest.approx(math.log(4) / 2)
    assert out['id_entropy'] == pytest.approx(-(4 * 0.125 * math.log(0.125) + 0.5 * math.log(0.5)))


def test_factorised_ids():
    # K = 4 semantic codes x m = 3 sub-codes: code 0 uses sub-codes 0, 1; code 2 uses 2
    ids = torch.tensor([[0, 1, 8, 8]])
    out = codebook_usage(ids, 12, factorization=(4, 3))
    assert out['usage_semantic'] == 0.5
    assert out['usage_subcodes'] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert out['semantic_entropy'] == pytest.approx(math.log(2))  # codes 0 and 2, two ids each
